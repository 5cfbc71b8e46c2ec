"""The IR illuminator: on when it is dark, off when it is light, never flickering.

``light`` mode reads the light level from the camera's own frames: the mean grey level of
the motion frame (0-255, the camera's auto-exposure included, so it falls when exposure
and gain run out at dusk). The level is averaged over a few seconds; the light switches on
once the level has stayed below ``ir_on_below`` for ``ir_hold_s``, and off once it has
stayed above ``ir_off_above`` as long. The gap between the two thresholds is the
hysteresis: the IR lights the scene itself, so the level with the light on is higher than
the level that switched it on. A state is also kept at least ``ir_hold_s``.

``schedule`` mode switches by the sun (sunset to sunrise at the station), which the daemon
works out (:mod:`station.schedule`) and hands in.

:class:`IrSwitch` is the pure decision; :class:`IrLight` drives the pin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from station.gpio.pins import open_output
from station.log import get_logger

log = get_logger("gpio")

LEVEL_TIME_S = 5.0
"""Time constant of the averaged light level."""


def light_level(gray: np.ndarray) -> float:
    """Mean grey level of a motion frame, on a sparse grid (cheap on a Pi)."""
    return float(gray[::4, ::4].mean())


@dataclass
class IrSwitch:
    on_below: float
    off_above: float
    hold_s: float
    on: bool = False
    level: float | None = None
    _since: float | None = None        # when the level crossed the threshold that would switch
    _changed: float = -math.inf        # when the light last switched
    _last: float = 0.0                 # the previous frame's time

    def update(self, level: float, now: float) -> bool | None:
        """Feed the frame's light level at ``now`` (seconds, any clock); the new state when
        the light must switch, else None."""
        if self.level is None:
            self.level = level
        else:
            dt = max(0.0, now - self._last)
            self.level += (level - self.level) * (1.0 - math.exp(-dt / LEVEL_TIME_S))
        self._last = now
        wants = self.level < self.on_below if not self.on else not self.level > self.off_above
        if wants == self.on:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since >= self.hold_s and now - self._changed >= self.hold_s:
            self.on, self._since, self._changed = wants, None, now
            return wants
        return None


class IrLight:
    """The IR illuminator on GPIO ``pin`` (``[camera] ir_light``)."""

    KEY = "camera.ir_light"

    def __init__(self, pin: int, mode: str, switch: IrSwitch, factory: Any = None):
        self.pin = pin
        self.mode = mode
        self.switch = switch
        self._device = open_output(self.KEY, pin, factory)
        self.switches = 0
        self.asleep = False

    @classmethod
    def from_config(cls, camera_cfg, factory: Any = None) -> "IrLight | None":
        if camera_cfg.ir_light is None:
            return None
        return cls(camera_cfg.ir_light, camera_cfg.ir_mode,
                   IrSwitch(camera_cfg.ir_on_below, camera_cfg.ir_off_above, camera_cfg.ir_hold_s), factory)

    @property
    def on(self) -> bool:
        return self.switch.on

    def frame(self, gray: np.ndarray, now: float) -> None:
        """``light`` mode: one motion frame."""
        if self.mode == "light":
            self._set(self.switch.update(light_level(gray), now), "light level")

    def dark(self, is_dark: bool) -> None:
        """``schedule`` mode: whether the sun is down now."""
        if self.mode == "schedule" and is_dark != self.switch.on:
            self.switch.on = is_dark
            self._set(is_dark, "schedule")

    def _set(self, state: bool | None, why: str) -> None:
        if state is None:
            return
        self._device.value = bool(state) and not self.asleep
        self.switches += 1
        level = self.switch.level
        log.info("IR light " + ("on" if state else "off"), pin=self.pin, by=why,
                 level=round(level, 1) if level is not None else "-")

    def sleep(self, asleep: bool) -> None:
        """The camera is closed (schedule, pir_wake): the light goes off to save power, and
        comes back as it was when the camera opens."""
        if asleep != self.asleep:
            self.asleep = asleep
            self._device.value = self.switch.on and not asleep

    def facts(self) -> dict[str, Any]:
        level = self.switch.level
        return {"pin": self.pin, "mode": self.mode, "on": self.on and not self.asleep, "switches": self.switches,
                "light_level": round(level, 1) if level is not None and self.mode == "light" else None}

    def close(self) -> None:
        try:
            self._device.off()
        finally:
            self._device.close()
