"""Opening a GPIO for a config key: a pin that is taken, missing or unreachable is one
clear sentence naming the key (``camera.ir_light = 18: ...``), and the station refuses to
start rather than run without the light or the sensor it was told it has."""

from __future__ import annotations

from typing import Any

INSTALL_HINT = ("install it with `sudo apt install python3-gpiozero` (venv made with --system-site-packages) "
                "or `pip install gpiozero`")


class GpioError(ValueError):
    """A configured GPIO cannot be used; the message names the key and the pin."""


def _gpiozero():
    try:
        import gpiozero
    except ImportError as exc:
        raise GpioError(f"gpiozero is not installed ({exc}); {INSTALL_HINT}") from None
    return gpiozero


def _explain(key: str, pin: int, exc: Exception) -> GpioError:
    from gpiozero import exc as gz

    if isinstance(exc, gz.GPIOPinInUse):
        why = "the pin is already in use (by another setting or another program)"
    elif isinstance(exc, (gz.PinInvalidPin, gz.PinUnknownPi)):
        why = f"no such GPIO on this board ({exc})"
    elif isinstance(exc, gz.BadPinFactory):
        why = ("no GPIO on this machine (gpiozero found no pin library: on a Raspberry Pi install "
               "python3-lgpio; elsewhere leave the key out)")
    else:
        why = f"{type(exc).__name__}: {exc}"
    return GpioError(f"{key} = {pin}: {why}")


def open_output(key: str, pin: int, factory: Any = None):
    """A gpiozero ``DigitalOutputDevice`` on GPIO ``pin`` (BCM), off."""
    gpiozero = _gpiozero()
    try:
        return gpiozero.DigitalOutputDevice(pin, active_high=True, initial_value=False, pin_factory=factory)
    except Exception as exc:  # noqa: BLE001 - every pin library raises its own; all become one sentence
        raise _explain(key, pin, exc) from exc


def open_input(key: str, pin: int, factory: Any = None):
    """A gpiozero ``DigitalInputDevice`` on GPIO ``pin`` (BCM), pulled down: a PIR module drives
    its output high while it sees movement."""
    gpiozero = _gpiozero()
    try:
        return gpiozero.DigitalInputDevice(pin, pull_up=False, pin_factory=factory)
    except Exception as exc:  # noqa: BLE001 - every pin library raises its own; all become one sentence
        raise _explain(key, pin, exc) from exc
