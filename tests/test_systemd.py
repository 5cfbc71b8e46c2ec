"""The systemd units: checked by systemd's own verifier, hardened, and their claims held to the code.

``systemd-analyze verify`` wants every ExecStart= binary to exist, so each unit is verified
as a copy whose ExecStart= names this venv's ``station`` instead of /opt/.../venv/bin/station;
everything else is verified as shipped. Without systemd-analyze (apt install systemd)
those tests skip and say so.
"""

from __future__ import annotations

import ctypes
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from station.camera.opencv_source import OpenCVCamera
from station.camera.picam import Picamera2Camera
from station.events.store import EventStore
from tests.broker import make_broker
from tests.conftest import ROOT, minimal_toml

UNITS = {"station": ROOT / "systemd" / "station.service", "collector": ROOT / "systemd" / "collector.service"}
STATION_BIN = Path(sys.executable).parent / "station"


def unit_keys(path: Path) -> dict[str, list[str]]:
    """``Key`` -> every value it is given (systemd keys may repeat, e.g. DeviceAllow=)."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)\s*(s|min)?", value)
    assert m, f"cannot read the time span {value!r}"
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def analyzer() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("no systemd-analyze here (apt install systemd)")
    return tool


def runnable_copy(name: str, folder: Path, *extra_lines: str) -> Path:
    """The unit with ExecStart= pointing at this venv's station (verify needs it to exist)."""
    assert STATION_BIN.exists(), f"{STATION_BIN}: the venv's station command is missing"
    text = re.sub(r"^ExecStart=/opt/\w+/venv/bin/station", f"ExecStart={STATION_BIN}",
                  UNITS[name].read_text(), flags=re.M)
    assert f"ExecStart={STATION_BIN}" in text
    if extra_lines:
        text = text.replace("[Service]\n", "[Service]\n" + "\n".join(extra_lines) + "\n", 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.service"
    path.write_text(text)
    return path


def verify(path: Path) -> tuple[int, list[str]]:
    """systemd-analyze verify's exit code and its complaints about this unit file."""
    out = subprocess.run([analyzer(), "verify", "--man=no", str(path)], capture_output=True, text=True,
                         timeout=60)
    mine = [line for line in (out.stdout + out.stderr).splitlines() if path.name in line]
    return out.returncode, mine


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_passes_systemd_analyze_verify(name, tmp_path):
    code, complaints = verify(runnable_copy(name, tmp_path))
    assert code == 0 and complaints == [], complaints


def test_verify_would_catch_a_mistyped_unit(tmp_path):
    """The check above can fail: unknown keys and bad values are only warnings to systemd."""
    code, complaints = verify(runnable_copy("station", tmp_path, "WatchdogSec=soon", "NoNewPrivilege=yes"))
    assert any("NoNewPrivilege" in c for c in complaints) and any("soon" in c for c in complaints)


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_exposure_is_low_by_systemds_own_measure(name, tmp_path):
    out = subprocess.run([analyzer(), "security", "--offline=true", str(runnable_copy(name, tmp_path))],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out.stdout)
    if out.returncode != 0 and m is None:
        pytest.skip(f"systemd-analyze security --offline is not supported here: {out.stderr.strip()[:200]}")
    assert m and float(m.group(1)) <= 2.5, out.stdout[-2000:]


@pytest.mark.parametrize("name,exec_start", [
    ("station", "/opt/station/venv/bin/station run --config /etc/station/station.toml"),
    ("collector", "/opt/camtrap/venv/bin/station collector --config /etc/camtrap/collector.toml"),
])
def test_units_are_notify_services_with_a_watchdog_restart_policy_and_journal_logging(name, exec_start):
    k = unit_keys(UNITS[name])
    assert k["ExecStart"] == [exec_start]
    assert k["Type"] == ["notify"] and k["NotifyAccess"] == ["main"]
    assert seconds(k["WatchdogSec"][0]) > 0 and k["Restart"][0] in ("always", "on-failure")
    assert seconds(k["RestartSec"][0]) > 0 and k["StartLimitBurst"] and k["StartLimitIntervalSec"]
    assert k["StandardOutput"] == ["journal"] and k["SyslogIdentifier"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "LockPersonality", "RestrictRealtime",
                "MemoryDenyWriteExecute"):
        assert k[key] == ["yes"], key
    assert k["ProtectSystem"] == ["strict"]
    state = "/var/lib/station" if name == "station" else "/var/lib/camtrap-collector"
    assert k["ReadWritePaths"] == [state] and k["StateDirectory"] == [state.rsplit("/", 1)[1]]


def test_station_unit_reaches_the_camera_and_battery_monitor_devices_and_nothing_else():
    k = unit_keys(UNITS["station"])
    assert k["SupplementaryGroups"] == ["video"] and k["DevicePolicy"] == ["closed"]
    assert set(k["DeviceAllow"]) == {"char-video4linux rw", "char-media rw", "char-dma_heap rw", "char-i2c rw"}
    assert "PrivateDevices" not in k, "PrivateDevices would hide /dev/video* from picamera2"


def test_station_watchdog_outlasts_the_longest_camera_call_the_sources_allow():
    """The loop pings at half of WatchdogSec; between two progress points lies at most one
    camera call, each bounded by its source's own timeout (read from the code, not copied)."""
    watchdog = seconds(unit_keys(UNITS["station"])["WatchdogSec"][0])
    pi = inspect.signature(Picamera2Camera.__init__).parameters
    cv = inspect.signature(OpenCVCamera.__init__).parameters
    longest = max(pi["read_timeout_s"].default, cv["open_timeout_s"].default,
                  cv["read_timeout_s"].default + 2.0)  # OpenCV's close() joins its grab thread this long
    assert watchdog / 2 + longest < watchdog, (watchdog, longest)


MDWE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:          # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


def _under_mdwe(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``args`` with the kernel refusing writable+executable memory (PR_SET_MDWE, Linux 6.3+,
    inherited across exec): what MemoryDenyWriteExecute=yes enforces with seccomp."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(66, 0, 0, 0, 0) < 0:  # PR_GET_MDWE
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+) to try MemoryDenyWriteExecute with")
    script = tmp_path / "mdwe.py"
    script.write_text(MDWE)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout)


def test_station_and_its_model_run_with_memory_deny_write_execute(tmp_path):
    probe = _under_mdwe(tmp_path, sys.executable, "-c",
                        "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ|mmap.PROT_WRITE|mmap.PROT_EXEC)")
    assert probe.returncode != 0 and "Permission denied" in probe.stderr, "the W^X rule was not in force"
    config = tmp_path / "station.toml"
    config.write_text(minimal_toml(tmp_path / "data", camera="synthetic:3"))
    run = _under_mdwe(tmp_path, str(STATION_BIN), "run", "--config", str(config), "--duration", "120")
    assert run.returncode == 0, run.stderr[-3000:]
    records = list(EventStore(tmp_path / "data").records())
    classified = [r for r in records if (r.get("classification") or {}).get("tag")]
    assert classified and not any((r.get("classification") or {}).get("error") for r in records), \
        "TFLite (XNNPACK) classified events without writable+executable memory"


def test_collector_with_its_dashboard_runs_with_memory_deny_write_execute(tmp_path):
    broker = make_broker(tmp_path / "broker").start()
    try:
        config = tmp_path / "collector.toml"
        config.write_text(f'[collector]\ndata_dir = "{tmp_path / "collector"}"\n'
                          f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n[http]\nport = 0\n')
        run = _under_mdwe(tmp_path, str(STATION_BIN), "collector", "--config", str(config), "--duration", "1.5")
    finally:
        broker.stop()
    assert run.returncode == 0 and "dashboard at http://" in run.stdout, run.stderr[-3000:]
