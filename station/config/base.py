"""Shared base for config sections.

Unknown keys are errors (a typo must not pass silently), and values must have the type
TOML gives them: ``true``/``false`` for a switch and a bare number for a number, so
``tls = "no"`` or ``port = "1883"`` are refused rather than guessed at (pydantic's strict
mode). A float setting takes an integer too (``min_free_mb = 500``); infinity and NaN,
which TOML can spell, are refused everywhere.

TOML has no path and no tuple type, so those fields are annotated ``Annotated[...,
Strict(False)]`` (:data:`PathValue`, :data:`Pair`, :data:`PointValue`): a string becomes a
path and an array a tuple, while the numbers inside the array stay strict. A date-time
quoted by mistake is still unambiguous, so :data:`DateTimeValue` takes it too.
"""

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict

PathValue = Annotated[Path, Strict(False)]
"""A path, written in TOML as a string."""
Pair = Annotated[tuple[int, int], Strict(False)]
"""Two whole numbers, written in TOML as an array: ``[1280, 720]``."""
DateTimeValue = Annotated[datetime, Strict(False)]
"""A TOML date-time (``2026-11-01T18:00:00Z``); the same in quotes is taken too."""
PointValue = Annotated[tuple[float, float], Strict(False)]
"""Two numbers, written in TOML as an array: ``[0.5, 0.25]``."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True,
                              allow_inf_nan=False)


def check_gpio(pin: int | None) -> int | None:
    """A GPIO number as gpiozero takes it (BCM), on the Raspberry Pi's 40-pin header."""
    if pin is not None and not 0 <= pin <= 27:
        raise ValueError("no such GPIO on the Raspberry Pi's 40-pin header: write its BCM number, 0 to 27 "
                         "(e.g. 17 for header pin 11)")
    return pin
