"""``[power]``: the battery monitor and the warnings about the Pi's own supply and heat.

    monitor = "none"        # the default: no battery monitor
    monitor = "ina219"      # a TI INA219 on the Pi's I2C bus (docs/ranger-guide.md: wiring)
    i2c_bus = 1             # /dev/i2c-1: the header's pins 3 (SDA) and 5 (SCL)
    i2c_address = 0x40      # 0x40-0x4F, set by the board's A0/A1 solder bridges
    shunt_ohms = 0.1        # the shunt resistor on the board (R100 on most breakouts)

The monitor is read through ``smbus2`` (the ``power`` extra, or ``apt install
python3-smbus2``) every ``sample_interval_s``; the readings give the battery's voltage,
the station's current and power, and watt-hours per day (``station/power/``). The Pi's
own under-voltage and throttling flags and its SoC temperature are read from the kernel
whatever is set here (absent, not an error, on other machines).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from station.config.base import Section

class PowerSection(Section):
    monitor: Literal["none", "ina219"] = "none"
    """The battery monitor: "none", or "ina219" (bus voltage, shunt current, power over I2C)."""
    i2c_bus: int = Field(default=1, ge=0, le=255)
    """The I2C bus number: /dev/i2c-N (1 on the Pi's header once I2C is switched on)."""
    i2c_address: int = Field(default=0x40, ge=0x40, le=0x4F)
    """The INA219's address: 0x40 with A0 and A1 open; up to 0x4F with the straps."""
    shunt_ohms: float = Field(default=0.1, ge=0.01, le=10)
    """The shunt resistor: 0.1 ohm (marked R100) on most INA219 boards, 0.01 ohm on 10-20 A
    boards. Its full scale is 0.32 V, so 0.1 ohm measures up to 3.2 A."""
    sample_interval_s: float = Field(default=10, ge=1, le=600)
    """How often the monitor and the kernel's flags are read (watt-hours are integrated
    between readings; a gap of over three intervals is not bridged)."""
    warn_temperature_c: float = Field(default=80, ge=40, le=110)
    """``station selftest`` warns at this SoC temperature (a Pi 4 or 5 starts slowing down
    at 80 degrees C and throttles hard at 85)."""

    @property
    def enabled(self) -> bool:
        return self.monitor != "none"

    def describe(self) -> str:
        if not self.enabled:
            return "no battery monitor"
        return f"{self.monitor} on i2c-{self.i2c_bus} at {self.i2c_address:#04x}, shunt {self.shunt_ohms:g} ohm"
