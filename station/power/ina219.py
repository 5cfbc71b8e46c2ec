"""A TI INA219 current/power monitor on I2C, in plain Python over an SMBus object.

    monitor = INA219(SMBus(1), address=0x40, shunt_ohms=0.1)   # smbus2.SMBus, or a fake
    r = monitor.read()          # BatteryReading(battery_v=12.43, bus_v=12.41, current_a=0.21, ...)

Register formats (INA219 datasheet, SBOS448, section 8.6). Every register is 16 bits sent
most significant byte first, while SMBus "read word" takes the first byte as the low one,
so each word is byte-swapped on the way in and out (:func:`swap16`).

* 0x00 configuration: written as :data:`CONFIG` = 0x3FFF: 32 V bus range, shunt gain /8
  (+-320 mV), both ADCs 12-bit averaging 128 samples (68 ms: an infrared illuminator's
  or a modem's pulses are averaged, not caught at their peak), shunt and bus continuous.
  A power-on reset sets 0x399F; reading anything but ours means the chip was reset (a
  brown-out) and it is configured again.
* 0x01 shunt voltage: two's complement, LSB 10 uV whatever the gain; at gain /8 the full
  scale is +-32000 (+-320 mV: 0x7D00 and 0x8300). A reading at full scale is clipped: the
  current is beyond what the shunt can measure.
* 0x02 bus voltage: bits 15-3, LSB 4 mV; bit 1 (CNVR, conversion ready) and bit 0 (OVF,
  the current/power calculation overflowed) are flags.
* 0x03 power, 0x04 current, 0x05 calibration: the chip's own multiplication, valid only
  after a calibration is written (and lost at every reset). Not used: current is the
  shunt voltage over ``shunt_ohms`` here, with the shunt register's full 10 uV
  resolution, and power the bus voltage times that current, so a brown-out cannot leave
  zeros behind. :func:`calibration`, :func:`current_from_register` and
  :func:`power_from_register` give the datasheet's formulas for checking against them.

The bus voltage is measured at VIN- (the load side of the shunt); the battery's own
voltage is VIN+ = bus + shunt, which is what ``battery_v`` reports and what the low-battery
schedule compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

REG_CONFIG, REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CALIBRATION = range(6)
CONFIG = 0x3FFF
"""BRNG=1 (32 V), PG=11 (/8, +-320 mV), BADC=SADC=1111 (128 samples), MODE=111 (continuous)."""
POWER_ON_CONFIG = 0x399F
RESET = 0x8000
SHUNT_LSB_V = 10e-6
BUS_LSB_V = 4e-3
SHUNT_FULL_SCALE = 32000
"""The shunt register's largest magnitude at gain /8 (320 mV)."""
BUS_MAX_V = 26.0
"""The INA219's absolute maximum on its inputs; a bus reading above it is not a battery."""


class SMBusLike(Protocol):
    """What is used of ``smbus2.SMBus`` (a test hands in a fake chip)."""

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...


class MonitorError(Exception):
    """A reading that cannot be had or cannot be right; the text names the bus and address,
    ``key`` the setting to look at."""

    def __init__(self, message: str, key: str = "power.i2c_address"):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class BatteryReading:
    battery_v: float
    """VIN+: the battery's voltage (bus + shunt)."""
    bus_v: float
    """VIN-: the voltage after the shunt, at the station's input."""
    shunt_v: float
    current_a: float
    """Into the station; negative if current flows back through the shunt (a charger on the
    station's side)."""
    power_w: float
    """bus_v * current_a: what the station draws."""


def swap16(word: int) -> int:
    """SMBus words are little-endian on the wire, the INA219's are big-endian."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def signed16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def shunt_volts(register: int) -> float:
    """The shunt voltage register (0x01) in volts: two's complement, 10 uV a step."""
    return signed16(register) * SHUNT_LSB_V


def bus_volts(register: int) -> float:
    """The bus voltage register (0x02) in volts: bits 15-3, 4 mV a step."""
    return (register >> 3) * BUS_LSB_V


def calibration(current_lsb_a: float, shunt_ohms: float) -> int:
    """The calibration register (0x05) for a current LSB: trunc(0.04096 / (LSB * R)), bit 0 unused."""
    return int(0.04096 / (current_lsb_a * shunt_ohms)) & 0xFFFE


def current_from_register(register: int, current_lsb_a: float) -> float:
    """The current register (0x04): two's complement, ``current_lsb_a`` a step."""
    return signed16(register) * current_lsb_a


def power_from_register(register: int, current_lsb_a: float) -> float:
    """The power register (0x03): unsigned, 20 * ``current_lsb_a`` watts a step."""
    return register * 20 * current_lsb_a


class INA219:
    """One chip at ``address`` on ``bus``; :meth:`read` configures it when it needs to."""

    name = "ina219"

    def __init__(self, bus: SMBusLike, address: int = 0x40, shunt_ohms: float = 0.1, bus_number: int | None = None):
        if not (math.isfinite(shunt_ohms) and shunt_ohms > 0):
            raise ValueError(f"shunt_ohms must be a resistance above 0, got {shunt_ohms!r}")
        self.bus, self.address, self.shunt_ohms = bus, address, shunt_ohms
        self.where = f"i2c-{bus_number} at {address:#04x}" if bus_number is not None else f"I2C address {address:#04x}"
        self.resets = 0
        """Times the chip was found reset (a brown-out) and configured again."""
        self._configured = False

    def _read(self, register: int) -> int:
        return swap16(self.bus.read_word_data(self.address, register))

    def _write(self, register: int, value: int) -> None:
        self.bus.write_word_data(self.address, register, swap16(value))

    def configure(self) -> None:
        self._write(REG_CONFIG, CONFIG)
        if self._read(REG_CONFIG) != CONFIG:
            raise MonitorError(f"{self.where}: the chip there did not take the configuration (not an INA219?)")
        self._configured = True

    def read(self) -> BatteryReading:
        """One reading; :class:`MonitorError` naming the bus and address if there is none."""
        try:
            if not self._configured:
                self.configure()
            elif self._read(REG_CONFIG) != CONFIG:
                self.resets += 1
                self.configure()
            shunt_raw = self._read(REG_SHUNT)
            bus_raw = self._read(REG_BUS)
        except MonitorError:
            self._configured = False
            raise
        except OSError as exc:
            self._configured = False
            raise MonitorError(f"{self.where}: no answer ({exc.strerror or exc}): check the wiring and "
                               "power.i2c_address") from None
        if abs(signed16(shunt_raw)) >= SHUNT_FULL_SCALE:
            raise MonitorError(f"{self.where}: the shunt reads its full scale (320 mV): more current than "
                               f"a {self.shunt_ohms:g} ohm shunt can measure, or power.shunt_ohms is wrong",
                               "power.shunt_ohms")
        shunt_v, bus_v = shunt_volts(shunt_raw), bus_volts(bus_raw)
        if bus_v > BUS_MAX_V:
            raise MonitorError(f"{self.where}: the bus reads {bus_v:.2f} V, above the INA219's "
                               f"{BUS_MAX_V:g} V maximum: not a reading")
        current = shunt_v / self.shunt_ohms
        return BatteryReading(battery_v=round(max(0.0, bus_v + shunt_v), 3), bus_v=round(bus_v, 3),
                              shunt_v=round(shunt_v, 5), current_a=round(current, 4),
                              power_w=round(bus_v * current, 3))


def open_ina219(bus_number: int, address: int, shunt_ohms: float) -> INA219:
    """The chip on /dev/i2c-``bus_number`` through smbus2; :class:`MonitorError` naming the
    key to look at when the module or the bus is missing."""
    try:
        from smbus2 import SMBus
    except ImportError:
        raise MonitorError("power.monitor = \"ina219\" needs the smbus2 package: pip install 'station[power]' "
                           "in the station's venv, or sudo apt install python3-smbus2", "power.monitor") from None
    try:
        bus = SMBus(bus_number)
    except FileNotFoundError:
        raise MonitorError(f"power.i2c_bus: /dev/i2c-{bus_number} does not exist: switch I2C on "
                           "(sudo raspi-config nonint do_i2c 0, then reboot) or correct power.i2c_bus",
                           "power.i2c_bus") from None
    except PermissionError:
        raise MonitorError(f"power.i2c_bus: /dev/i2c-{bus_number} may not be opened by this user: add it to "
                           "group i2c (deploy/install-station.sh does)", "power.i2c_bus") from None
    except OSError as exc:
        raise MonitorError(f"power.i2c_bus: /dev/i2c-{bus_number}: {exc.strerror or exc}", "power.i2c_bus") from None
    return INA219(bus, address, shunt_ohms, bus_number=bus_number)
