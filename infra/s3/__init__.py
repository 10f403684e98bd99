"""A real S3-compatible server for tests and the local stack: OpenStack Swift with s3api."""

from infra.s3.swift import SwiftS3, swift_available

__all__ = ["SwiftS3", "swift_available"]
