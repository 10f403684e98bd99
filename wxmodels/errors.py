"""Exceptions that carry a one-line, user-facing explanation."""

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DataError",
    "GapError",
    "IngestError",
    "LockError",
    "PathError",
    "RegistryError",
    "WxcError",
]


class WxcError(Exception):
    """Base class: the message is one line that names the problem and, where possible, the fix."""


class ConfigError(WxcError, ValueError):
    """A configuration file or override is invalid."""


class DataError(WxcError, ValueError):
    """Input data is missing, malformed or physically implausible."""


class IngestError(DataError):
    """A source cannot be ingested into the store."""


class GapError(IngestError):
    """Everything new lies after a gap: nothing can be appended until the missing steps come."""


class RegistryError(WxcError):
    """A registry operation was refused (bad name, missing version, immutable write)."""


class ChecksumError(RegistryError):
    """A file's bytes do not match the sha256 recorded in its manifest."""


class PathError(WxcError, ValueError):
    """A path that wxcompress must not write into (not empty and not its own), or cannot."""


class LockError(WxcError):
    """Another writer holds the store (or registry) and did not let go in time."""
