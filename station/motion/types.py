"""What motion detection says about one frame."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    """A region in frame fractions (0..1), independent of the stream's resolution."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    def as_list(self) -> list[float]:
        return [round(self.x, 4), round(self.y, 4), round(self.w, 4), round(self.h, 4)]


@dataclass(frozen=True, slots=True)
class MotionResult:
    motion: bool
    """True when at least one region passed every test (area, masks, not a light jump)."""
    score: float
    """Fraction of the frame covered by accepted moving regions (0..1)."""
    boxes: tuple[Box, ...] = ()
    changed_fraction: float = 0.0
    """Fraction of (unmasked) pixels that differed from the background, before area filtering."""
    light_jump: bool = False
    """The whole frame changed at once (cloud, IR filter switch): not motion."""

    @staticmethod
    def still(changed_fraction: float = 0.0, light_jump: bool = False) -> "MotionResult":
        return MotionResult(False, 0.0, (), changed_fraction, light_jump)
