"""The power boundaries a laptop fakes: an I2C bus with an INA219 on it, and /sys trees of
a Raspberry Pi 4 and a Pi 5 (the kernel's interface is files, so the fakes are files)."""

from __future__ import annotations

import errno
import stat
from pathlib import Path

INA219_POWER_ON = {0: 0x399F, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


class FakeINA219Bus:
    """An SMBus (smbus2's ``read_word_data``/``write_word_data``) with one INA219 at
    ``address``, answering as the datasheet says: 16-bit registers sent most significant
    byte first (so SMBus's little-endian word arrives byte-swapped), the shunt register in
    two's complement at 10 uV, the bus register's bits 15-3 at 4 mV with CNVR (bit 1), the
    current and power registers computed from the calibration (section 8.5), a reset on
    bit 15 of the configuration. ``set(battery_v, current_a)`` is the world: a battery at
    VIN+ and that current through the shunt."""

    def __init__(self, address: int = 0x40, shunt_ohms: float = 0.1, bus_number: int = 1):
        self.address, self.shunt_ohms, self.bus_number = address, shunt_ohms, bus_number
        self.registers = dict(INA219_POWER_ON)
        self.present = True
        self.closed = False
        self.reads = 0
        self.set(0.0, 0.0)

    # -- the world -------------------------------------------------------------------------
    def set(self, battery_v: float, current_a: float) -> None:
        shunt_v = current_a * self.shunt_ohms
        shunt_raw = max(-32000, min(32000, round(shunt_v / 10e-6)))
        bus_v = battery_v - shunt_raw * 10e-6
        bd = max(0, min(8191, round(bus_v / 0.004)))
        self.registers[1] = shunt_raw & 0xFFFF
        self.registers[2] = (bd << 3) | 0b10
        self._products()

    def brown_out(self) -> None:
        """The chip lost its supply for a moment: every register back to its power-on value."""
        shunt, bus = self.registers[1], self.registers[2]
        self.registers = dict(INA219_POWER_ON)
        self.registers[1], self.registers[2] = shunt, bus

    def _products(self) -> None:
        cal = self.registers[5]
        shunt = self.registers[1] - 0x10000 if self.registers[1] & 0x8000 else self.registers[1]
        current = int(shunt * cal / 4096)
        self.registers[4] = current & 0xFFFF
        self.registers[3] = max(0, int(current * (self.registers[2] >> 3) / 5000)) & 0xFFFF

    # -- smbus2 ----------------------------------------------------------------------------
    def _check(self, i2c_addr: int) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if not self.present or i2c_addr != self.address:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def read_word_data(self, i2c_addr: int, register: int, force=None) -> int:
        self._check(i2c_addr)
        self.reads += 1
        return _swap(self.registers[register])

    def write_word_data(self, i2c_addr: int, register: int, value: int, force=None) -> None:
        self._check(i2c_addr)
        word = _swap(value)
        if register == 0 and word & 0x8000:
            self.registers = {**INA219_POWER_ON, 1: self.registers[1], 2: self.registers[2]}
            return
        if register in (0, 5):
            self.registers[register] = word & (0xFFFE if register == 5 else 0xFFFF)
            self._products()

    def close(self) -> None:
        self.closed = True


# -- /sys trees ------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _thermal(root: Path, millidegrees: int) -> None:
    _write(root / "class/thermal/thermal_zone0/type", "cpu-thermal")
    _write(root / "class/thermal/thermal_zone0/temp", str(millidegrees))


def pi4_sys(root: Path, *, undervoltage: bool = False, throttled_word: int | None = None,
            millidegrees: int = 48692) -> Path:
    """A Pi 4 on Raspberry Pi OS: hwmon0 the thermal zone, hwmon1 ``rpi_volt``, and the
    firmware's deprecated ``get_throttled`` beside them."""
    word = throttled_word if throttled_word is not None else (0x50005 if undervoltage else 0)
    _write(root / "class/hwmon/hwmon0/name", "cpu_thermal")
    _write(root / "class/hwmon/hwmon0/temp1_input", str(millidegrees))
    _write(root / "class/hwmon/hwmon1/name", "rpi_volt")
    _write(root / "class/hwmon/hwmon1/in0_lcrit_alarm", "1" if undervoltage else "0")
    _write(root / "devices/platform/soc/soc:firmware/get_throttled", f"{word:x}")
    _thermal(root, millidegrees)
    return root


def pi5_sys(root: Path, *, undervoltage: bool = False, millidegrees: int = 55100) -> Path:
    """A Pi 5: ``rpi_volt`` after the thermal zone, the RP1's ADC and the fan; the firmware
    node is named ``soc@107c000000:firmware`` and has no ``get_throttled``."""
    for n, name in enumerate(("cpu_thermal", "rp1_adc", "rpi_volt", "pwmfan")):
        _write(root / f"class/hwmon/hwmon{n}/name", name)
    _write(root / "class/hwmon/hwmon2/in0_lcrit_alarm", "1" if undervoltage else "0")
    (root / "devices/platform/soc@107c000000/soc@107c000000:firmware").mkdir(parents=True)
    _thermal(root, millidegrees)
    return root


def set_undervoltage(root: Path, now: bool) -> None:
    """Flip the alarm in either tree, as the kernel's 2-second poll would."""
    for alarm in root.glob("class/hwmon/hwmon*/in0_lcrit_alarm"):
        alarm.write_text("1\n" if now else "0\n")


def fake_vcgencmd(folder: Path, answer: str = "throttled=0x50005", status: int = 0) -> Path:
    """An executable ``vcgencmd`` that prints ``answer`` (the real tool's output) and counts
    its calls in ``calls``: the fallback is a subprocess, so the fake is one too."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "vcgencmd"
    calls = folder / "calls"
    stream = ">&2" if status else ""
    script.write_text(f"#!/bin/sh\necho x >> '{calls}'\necho '{answer}' {stream}\nexit {status}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def vcgencmd_calls(script: Path) -> int:
    calls = script.parent / "calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0
