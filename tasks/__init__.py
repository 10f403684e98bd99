"""Prefect tasks: one per re-runnable unit of work, each a thin wrapper over one wxmodels call.

Tasks take configs, URIs and small records, and return small JSON-able records.
"""
