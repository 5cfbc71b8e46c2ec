"""Facts about the machine for the health heartbeat: temperature, load, memory, clock.

Each reader returns None when the board cannot tell (no thermal zone on a laptop VM,
no timedatectl in a container): the heartbeat says "unknown" rather than guessing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil

_THERMAL = Path("/sys/class/thermal")
# Zone types that measure the SoC/CPU: Raspberry Pi's "cpu-thermal", x86 "x86_pkg_temp".
_CPU_ZONES = ("cpu-thermal", "cpu_thermal", "soc_thermal", "x86_pkg_temp", "coretemp", "acpitz")


def cpu_temperature_c(root: Path = _THERMAL) -> float | None:
    zones = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        zones.append((kind, milli / 1000.0))
    for wanted in _CPU_ZONES:
        for kind, celsius in zones:
            if kind == wanted:
                return round(celsius, 1)
    return round(zones[0][1], 1) if zones else None


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def memory_mb() -> dict[str, float]:
    vm = psutil.virtual_memory()
    rss = psutil.Process().memory_info().rss
    return {"total_mb": round(vm.total / 2**20, 1), "available_mb": round(vm.available / 2**20, 1),
            "process_rss_mb": round(rss / 2**20, 1)}


def clock_sync() -> dict[str, object]:
    """Is the system clock synchronised (NTP, or GPS through chrony)? Event times depend on it."""
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                                 capture_output=True, text=True, timeout=2)
            value = out.stdout.strip()
            if out.returncode == 0 and value in ("yes", "no"):
                return {"synchronized": value == "yes", "source": "timedatectl", "offset_s": None}
        except (OSError, subprocess.TimeoutExpired):
            pass
    if Path("/run/systemd/timesync/synchronized").exists():
        return {"synchronized": True, "source": "systemd-timesyncd", "offset_s": None}
    return {"synchronized": None, "source": None, "offset_s": None}


class Uptime:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.started_wall = time.time()

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)
