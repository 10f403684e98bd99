"""A model registry over any fsspec URL: immutable, checksummed versions, aliases with history."""

from wxmodels.registry.cache import Cache
from wxmodels.registry.core import AliasEvent, Registry, parse_ref, validate_name

__all__ = ["AliasEvent", "Cache", "Registry", "parse_ref", "validate_name"]
