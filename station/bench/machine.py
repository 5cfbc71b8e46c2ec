"""Who ran a benchmark: the board, its CPU, kernel, OS, Python and the packages that ran.

Figures sent from a real board are worth only as much as what they say about it: which
board, how fast its CPU may run and under which governor, whether the firmware throttled
it, a 32-bit userland on a 64-bit kernel, and which numpy and model runtime did the work.
Nothing here names the station, its place, the host or the board's serial number.

    identity()                       # this machine
    identity(root=tmp_path)          # /proc, /sys and /etc read under another folder (tests)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import struct
import subprocess
from pathlib import Path

import psutil

from station.sysinfo import cpu_temperature_c

CPU_PARTS = {
    0xD03: "Cortex-A53",   # Raspberry Pi 3, Zero 2 W
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",   # Raspberry Pi 4, 400, CM4
    0xD0B: "Cortex-A76",   # Raspberry Pi 5, CM5
    0xD0C: "Neoverse-N1",
    0xD40: "Neoverse-V1",
}
"""Arm Ltd's CPU part numbers (implementer 0x41) as /proc/cpuinfo gives them on arm64."""

PACKAGES = ("camtrap-station", "numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime",
            "picamera2", "pydantic", "paho-mqtt", "psutil")
"""The packages whose versions a report carries (None when not installed)."""


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def board(root: Path = Path("/")) -> str | None:
    """The board's own name: the device tree's model on a Pi ("Raspberry Pi 4 Model B Rev 1.5"),
    else the Model line of /proc/cpuinfo, else the firmware's product name (a laptop, a VM);
    None when none says."""
    for path in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        model = _read(root / path)
        if model:
            return model
    for line in (_read(root / "proc/cpuinfo") or "").splitlines():  # a Pi kernel's last lines
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Model" and value.strip():
            return value.strip()
    vendor, product = _read(root / "sys/class/dmi/id/sys_vendor"), _read(root / "sys/class/dmi/id/product_name")
    named = " ".join(p for p in (vendor, product) if p)
    return named or None


def cpu(root: Path = Path("/")) -> dict:
    """The CPU's name, core count, features and clock policy, from /proc/cpuinfo and cpufreq."""
    text = _read(root / "proc/cpuinfo") or ""
    first: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        if processors <= 1 and key not in first:
            first[key] = value
    name = first.get("model name")
    if name is None and "CPU part" in first:
        try:
            implementer, part = int(first.get("CPU implementer", "0"), 16), int(first["CPU part"], 16)
        except ValueError:
            implementer, part = 0, -1
        name = CPU_PARTS.get(part) if implementer == 0x41 else None
        name = name or f"implementer {first.get('CPU implementer')} part {first['CPU part']}"
    cpufreq = root / "sys/devices/system/cpu/cpu0/cpufreq"
    max_khz = _read(cpufreq / "cpuinfo_max_freq")
    return {"name": name, "cores": processors or os.cpu_count(),
            "features": first.get("Features") or first.get("flags"),
            "max_mhz": int(max_khz) // 1000 if max_khz and max_khz.isdigit() else None,
            "governor": _read(cpufreq / "scaling_governor")}


def os_name(root: Path = Path("/")) -> str | None:
    """PRETTY_NAME of /etc/os-release ("Debian GNU/Linux 12 (bookworm)" on Raspberry Pi OS too)."""
    for line in (_read(root / "etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return None


def throttled() -> str | None:
    """The Pi firmware's throttling flags (``vcgencmd get_throttled``: 0x0 is none; bit 0 under-voltage
    now, bit 2 throttled now, bits 16-19 the same since boot); None off a Pi."""
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "get_throttled"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = out.stdout.strip().partition("=")[2]
    return value or None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def identity(root: Path = Path("/")) -> dict:
    """Everything above, as one JSON-able dict (the ``machine`` of a bench report)."""
    try:
        import numpy

        numpy_from = str(Path(numpy.__file__).parent.parent)
    except ImportError:
        numpy_from = None
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "board": board(root),
        "cpu": cpu(root),
        "cpus": os.cpu_count(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "architecture": platform.machine(),
        "userland_bits": struct.calcsize("P") * 8,
        "kernel": f"{platform.system()} {platform.release()} {platform.version()}",
        "os": os_name(root),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": package_versions(),
        "numpy_from": numpy_from,
        "load_average_1m": load,
        "cpu_temperature_c": cpu_temperature_c(root / "sys/class/thermal"),
        "throttled": throttled(),
    }


def summary_line(m: dict) -> str:
    """One line for a terminal: board, CPU, kernel, Python and the model runtime."""
    c = m.get("cpu") or {}
    clock = f" up to {c['max_mhz']} MHz ({c['governor']})" if c.get("max_mhz") else ""
    runtime = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items()
                        if k in ("ai-edge-litert", "tflite-runtime", "numpy") and v)
    throttle = f", throttled {m['throttled']}" if m.get("throttled") not in (None, "0x0") else ""
    return (f"{m.get('board') or 'unknown board'}: {c.get('name') or 'unknown CPU'} x{c.get('cores')}{clock}, "
            f"{m.get('architecture')} ({m.get('userland_bits')}-bit userland), {m.get('kernel', '').split(' #')[0]}, "
            f"Python {m.get('python')}, {runtime}{throttle}")
