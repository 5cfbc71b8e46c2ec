"""``[motion]``: the background model and what counts as motion."""

from __future__ import annotations

from pydantic import Field, field_validator

from station.config.base import PointValue, Section

Polygon = list[PointValue]


class MotionSection(Section):
    threshold: int = Field(default=15, ge=1, le=255)
    """Minimum grey-level difference from the background for a pixel to count as changed.
    15 keeps a camouflaged roe deer at dusk; 20 loses about one in a hundred such crossings
    in the synthetic forest, and 12 lets clumps of snowflakes through."""
    noise_k: float = Field(default=3.0, ge=0, le=20)
    """A pixel must also differ by noise_k times its own recent spread (swaying leaves)."""
    background_time_s: float = Field(default=4.0, gt=0, le=600)
    """Time constant of the background model: how fast it follows slow light change."""
    min_area: float = Field(default=0.003, gt=0, lt=1)
    """Smallest moving region, as a fraction of the frame area."""
    light_jump_fraction: float = Field(default=0.35, gt=0, le=1)
    """A frame where this fraction of pixels changes at once is a light jump, not motion."""
    blur: int = Field(default=5, ge=1, le=31)
    """Gaussian blur kernel (odd) applied before comparison; 1 disables it."""
    masks: list[Polygon] = Field(default_factory=list)
    """Exclusion polygons in frame fractions (0..1), e.g. [[0.0,0.0],[0.3,0.0],[0.3,0.2]]."""

    @field_validator("blur")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("blur must be an odd number of pixels")
        return v

    @field_validator("masks")
    @classmethod
    def _polygons(cls, v: list[Polygon]) -> list[Polygon]:
        for i, poly in enumerate(v):
            if len(poly) < 3:
                raise ValueError(f"mask {i} has {len(poly)} points; a polygon needs at least 3")
            for x, y in poly:
                if not (0 <= x <= 1 and 0 <= y <= 1):
                    raise ValueError(
                        f"mask {i} point [{x}, {y}] is outside the frame; use fractions from 0 to 1"
                    )
        return v
