"""Benchmarks: each prints its figures and writes a small report under benchmarks/reports/."""
