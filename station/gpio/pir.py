"""The PIR sensor: a wired one on GPIO, or the one a synthetic scene simulates.

Both answer :meth:`active`: has the PIR seen warm movement at this frame (its output is
high now, or went high since the last frame: a short pulse between two frames is not lost).

An HC-SR501 or AM312 holds its output high for a few seconds after it last saw movement
(the HC-SR501's delay potentiometer, 2.5 s at its minimum; the AM312's fixed ~2 s) and
needs about a minute to settle after power-up, during which it may fire by itself.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from station.camera.base import Frame
from station.gpio.pins import open_input


class Pir(Protocol):
    source: str

    def active(self, frame: Frame | None) -> bool: ...

    def wait(self, timeout: float) -> bool:
        """Block until the PIR fires or ``timeout`` passes; True if it fired."""

    def close(self) -> None: ...


class GpioPir:
    """A PIR module's output wired to GPIO ``pin`` (``[trigger] pir_pin``)."""

    KEY = "trigger.pir_pin"
    source = "gpio"

    def __init__(self, pin: int, factory: Any = None):
        self.pin = pin
        self._device = open_input(self.KEY, pin, factory)
        self._fired = threading.Event()
        self._device.when_activated = self._fired.set   # gpiozero's own thread
        self.pulses = 0

    def active(self, frame: Frame | None = None) -> bool:
        fired = self._fired.is_set()
        if fired:
            self._fired.clear()
            self.pulses += 1
        return bool(self._device.is_active) or fired

    def wait(self, timeout: float) -> bool:
        if self._device.is_active:
            return True
        return self._fired.wait(timeout)

    def close(self) -> None:
        self._device.close()


class ScenePir:
    """A synthetic scene's simulated PIR: read from each frame (``frame.meta["pir"]``)."""

    source = "scene"

    def active(self, frame: Frame | None) -> bool:
        return bool(frame is not None and frame.meta.get("pir"))

    def wait(self, timeout: float) -> bool:
        return False   # a simulation has no wire to wait on: the daemon keeps reading its frames

    def close(self) -> None:
        pass
