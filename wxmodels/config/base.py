"""The base class of every configuration model."""

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    """A frozen pydantic model that rejects unknown fields (a typo is an error, not a no-op)
    and non-finite numbers (``lr: .inf`` is refused, not trained with)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )
