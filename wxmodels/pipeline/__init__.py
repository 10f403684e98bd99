"""The cycle's stages as plain functions over configs, paths and small JSON records.

``tasks/`` wraps each of these in a Prefect task; nothing here knows about orchestration.
"""
