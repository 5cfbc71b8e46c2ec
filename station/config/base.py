"""Shared base for config sections: unknown keys are errors (a typo must not pass silently)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
