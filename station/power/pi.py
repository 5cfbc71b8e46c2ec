"""The Raspberry Pi's own supply and heat flags, as the kernel shows them.

    flags = PiFlagsReader(Path("/sys")).read()     # None off a Pi: absent, not an error
    flags.undervoltage, flags.throttled, flags.source

Which file says what (Raspberry Pi OS Bookworm, kernel 6.x; docs/operations.md has the
table by model):

* ``/sys/class/hwmon/hwmonN/in0_lcrit_alarm`` in the folder whose ``name`` is
  ``rpi_volt`` (driver ``raspberrypi_hwmon``, loaded by default; reported on the Zero 2 W,
  3B+, 4 and 5): 1 while the firmware reports under-voltage (polled every 2 s). N varies: on a Pi 5
  ``cpu_thermal``, ``rp1_adc`` and ``pwmfan`` come first.
* ``/sys/devices/platform/soc/soc:firmware/get_throttled`` (Pi 0-4 kernels that still
  carry it; none on a Pi 5): the firmware's whole word in hex, e.g. ``50005``: bit 0 under-voltage now, 1 ARM
  frequency capped, 2 throttled, 3 soft temperature limit, 16-19 the same "has occurred".
  Deprecated: the kernel logs a one-time "deprecated, use hwmon sysfs instead" warning
  with a backtrace when it is first read after boot.
* ``vcgencmd get_throttled`` (``throttled=0x50005``): any Pi, but it needs ``/dev/vcio``,
  which the hardened service cannot open; so a fallback for ``station selftest``.
* ``/sys/class/thermal/thermal_zone0/temp``: the SoC temperature in millidegrees (zone
  type ``cpu-thermal``), read by :func:`station.sysinfo.cpu_temperature_c`.

The "has occurred" bits (16-19) mean little once ``raspberrypi_hwmon`` is loaded: it asks
the firmware to clear them at every poll. So only the "now" bits (0-3) are used here, and
the station counts under-voltage episodes itself (:mod:`station.power.sampler`).

Under-voltage comes from the hwmon file where there is one (no kernel warning), else from
``get_throttled``, else from ``vcgencmd``; the other flags from ``get_throttled``, else
``vcgencmd``, else they are unknown (None). A ``vcgencmd`` that fails (missing, no access
to ``/dev/vcio``) is not asked again.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from station.log import get_logger

log = get_logger("power")

SYS = Path("/sys")
GET_THROTTLED = ("devices/platform/soc/soc:firmware/get_throttled",
                 "devices/platform/soc@*/soc@*:firmware/get_throttled")
"""Where the firmware node's ``get_throttled`` lives under /sys (Pi 0-4; the second is the
Pi 5's node naming, in case a kernel gives it the file)."""
HWMON_NAME = "rpi_volt"

UNDERVOLTAGE, FREQUENCY_CAPPED, THROTTLED, SOFT_TEMPERATURE_LIMIT = 1 << 0, 1 << 1, 1 << 2, 1 << 3


@dataclass(frozen=True, slots=True)
class PiFlags:
    source: str
    """Where ``undervoltage`` came from: "hwmon", "get_throttled" or "vcgencmd"."""
    undervoltage: bool
    frequency_capped: bool | None = None
    throttled: bool | None = None
    soft_temperature_limit: bool | None = None


def decode(word: int, source: str) -> PiFlags:
    """The "now" bits of a ``get_throttled`` word."""
    return PiFlags(source, bool(word & UNDERVOLTAGE), bool(word & FREQUENCY_CAPPED), bool(word & THROTTLED),
                   bool(word & SOFT_TEMPERATURE_LIMIT))


def parse_throttled(text: str) -> int:
    """``50005`` (sysfs), ``throttled=0x50005`` (vcgencmd) -> 0x50005; ValueError otherwise."""
    value = text.strip().removeprefix("throttled=")
    word = int(value, 16)
    if not 0 <= word < 1 << 32:
        raise ValueError(f"{text.strip()!r} is not a 32-bit get_throttled word")
    return word


Runner = Callable[..., subprocess.CompletedProcess]


class PiFlagsReader:
    """Reads the flags from a /sys tree (``sys_root``: a fake one in the tests) and, as a
    last resort, from ``vcgencmd`` (None: never)."""

    def __init__(self, sys_root: Path = SYS, vcgencmd: str | None = "vcgencmd", run: Runner = subprocess.run):
        self.sys_root = Path(sys_root)
        self.vcgencmd = shutil.which(vcgencmd) if vcgencmd else None
        self._run = run

    def _hwmon_alarm(self) -> bool | None:
        try:
            folders = sorted((self.sys_root / "class" / "hwmon").iterdir())
        except OSError:
            return None
        for folder in folders:
            try:
                if (folder / "name").read_text().strip() != HWMON_NAME:
                    continue
                return (folder / "in0_lcrit_alarm").read_text().strip() not in ("", "0")
            except OSError:
                continue
        return None

    def _sysfs_word(self) -> int | None:
        for pattern in GET_THROTTLED:
            for path in sorted(self.sys_root.glob(pattern)):
                try:
                    return parse_throttled(path.read_text())
                except (OSError, ValueError):
                    continue
        return None

    def _vcgencmd_word(self) -> int | None:
        if self.vcgencmd is None:
            return None
        try:
            out = self._run([self.vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=3)
            if out.returncode == 0:
                return parse_throttled(out.stdout)
            why = (out.stderr or out.stdout).strip() or f"exit status {out.returncode}"
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            why = str(exc)
        log.info("vcgencmd get_throttled gives no answer; not asked again", vcgencmd=self.vcgencmd, error=why)
        self.vcgencmd = None
        return None

    def read(self) -> PiFlags | None:
        """The flags now; None where the machine has none of these files (not a Pi)."""
        alarm = self._hwmon_alarm()
        word = self._sysfs_word()
        source = "get_throttled"
        if word is None:
            word, source = self._vcgencmd_word(), "vcgencmd"
        if word is not None:
            flags = decode(word, source)
            if alarm is not None:  # the hwmon file is the kernel's own word for under-voltage
                flags = PiFlags("hwmon", alarm, flags.frequency_capped, flags.throttled, flags.soft_temperature_limit)
            return flags
        if alarm is not None:
            return PiFlags("hwmon", alarm)
        return None

    @property
    def present(self) -> bool:
        """Does this machine show any of the flags (read without calling ``vcgencmd``)?"""
        return self._hwmon_alarm() is not None or self._sysfs_word() is not None
