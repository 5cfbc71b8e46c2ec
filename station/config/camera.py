"""``[camera]``: which source to read, at what size and rate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from station.config.base import DateTimeValue, Pair, PathValue, Section, check_gpio

Size = Pair


def _check_size(value: Size, key: str) -> Size:
    w, h = value
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ValueError(f"{key} must be [width, height] with each between 16 and 8192")
    return value


class CameraSection(Section):
    uri: str = Field(
        default="synthetic",
        description="picamera2[:N] | opencv:N | rtsp://... | VIDEO_FILE | IMAGE_FOLDER | synthetic[:SEED]",
    )
    main_size: Size = (1280, 720)
    """Full-resolution stream for stills (width, height)."""
    lores_size: Size = (320, 180)
    """Low-resolution stream that motion detection watches (width, height)."""
    fps: float = Field(default=10.0, gt=0, le=120)
    speed: Literal["realtime", "max"] = "realtime"
    """Replays and simulations: at the media's own pace, or as fast as possible."""
    start_time: DateTimeValue | None = None
    """Replays and simulations: wall time of the media's first frame (default: now)."""
    scene_pictures: PathValue | None = None
    """Synthetic scene: a folder of real animal pictures to walk across it instead of drawn animals."""
    scene_duration_s: float | None = Field(default=None, gt=0)
    """Synthetic scene: stop after this many seconds of scene time (default: endless)."""
    retry_initial_s: float = Field(default=1.0, gt=0, le=60)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)
    ir_light: int | None = None
    """GPIO (BCM number, 0-27 on the 40-pin header) that switches an IR illuminator on;
    none by default (docs/deployment.md has the wiring)."""
    ir_mode: Literal["light", "schedule"] = "light"
    """"light": on when the camera's own frames are dark (with hysteresis); "schedule":
    on from sunset to sunrise at [station] latitude/longitude."""
    ir_on_below: float = Field(default=30.0, ge=0, le=255)
    """"light": switch on when the mean grey level of the motion frames stays below this."""
    ir_off_above: float = Field(default=90.0, ge=0, le=255)
    """"light": switch off when it stays above this (the IR lights the scene itself, so
    this sits well above ir_on_below)."""
    ir_hold_s: float = Field(default=60.0, ge=0, le=3600)
    """"light": the level must stay past a threshold this long, and the light keeps a state at
    least this long, so a passing cloud or headlight never flickers it."""

    @model_validator(mode="after")
    def _ir_thresholds(self) -> "CameraSection":
        if self.ir_on_below >= self.ir_off_above:
            raise ValueError("camera.ir_on_below must be below camera.ir_off_above (the gap is the hysteresis)")
        return self

    @field_validator("main_size")
    @classmethod
    def _main(cls, v: Size) -> Size:
        return _check_size(v, "main_size")

    @field_validator("lores_size")
    @classmethod
    def _lores(cls, v: Size) -> Size:
        return _check_size(v, "lores_size")

    @field_validator("ir_light")
    @classmethod
    def _gpio(cls, v: int | None) -> int | None:
        return check_gpio(v)
