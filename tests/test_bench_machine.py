"""Bench reports say which machine they were measured on, so figures sent from a real board
can be read: the board, its CPU and clock policy, throttling, kernel, OS, Python and packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from station.bench import machine
from station.cli import main as station_cli
from station.commands import bench as bench_command

PI4_CPUINFO = "".join(
    f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
    f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n" for n in range(4)
) + "Revision\t: c03115\nSerial\t\t: 100000002a7c9f11\nModel\t\t: Raspberry Pi 4 Model B Rev 1.5\n"


def fake_root(tmp_path: Path, cpuinfo: str, model: bytes | None = None, mhz: int | None = None) -> Path:
    (tmp_path / "proc").mkdir(parents=True)
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    if model is not None:
        (tmp_path / "proc/device-tree").mkdir()
        (tmp_path / "proc/device-tree/model").write_bytes(model)
    if mhz is not None:
        freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
        freq.mkdir(parents=True)
        (freq / "cpuinfo_max_freq").write_text(f"{mhz * 1000}\n")
        (freq / "scaling_governor").write_text("ondemand\n")
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    return tmp_path


def test_a_pi_4_report_names_the_board_its_cpu_clock_and_temperature_but_not_its_serial(tmp_path):
    root = fake_root(tmp_path, PI4_CPUINFO, model=b"Raspberry Pi 4 Model B Rev 1.5\x00", mhz=1800)
    found = machine.identity(root)
    assert found["board"] == "Raspberry Pi 4 Model B Rev 1.5"
    assert found["cpu"] == {"name": "Cortex-A72", "cores": 4, "features": "fp asimd evtstrm crc32 cpuid",
                            "max_mhz": 1800, "governor": "ondemand"}
    assert found["os"] == "Debian GNU/Linux 12 (bookworm)" and found["cpu_temperature_c"] == 48.3
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert found["packages"]["camtrap-station"] and "ai-edge-litert" in found["packages"]
    assert found["userland_bits"] in (32, 64) and found["kernel"].startswith("Linux ")
    assert "100000002a7c9f11" not in json.dumps(found)
    line = machine.summary_line(found)
    assert line.startswith("Raspberry Pi 4 Model B Rev 1.5: Cortex-A72 x4 up to 1800 MHz (ondemand)")


def test_a_zero_2_w_without_a_device_tree_is_named_from_its_cpuinfo(tmp_path):
    cpuinfo = PI4_CPUINFO.replace("0xd08", "0xd03").replace("Raspberry Pi 4 Model B Rev 1.5",
                                                            "Raspberry Pi Zero 2 W Rev 1.0")
    found = machine.identity(fake_root(tmp_path, cpuinfo))
    assert (found["board"], found["cpu"]["name"], found["cpu"]["max_mhz"]) == \
        ("Raspberry Pi Zero 2 W Rev 1.0", "Cortex-A53", None)


def test_a_laptop_is_named_by_its_firmware_and_an_unknown_arm_core_by_its_numbers(tmp_path):
    root = fake_root(tmp_path, "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2\n\n"
                               "processor\t: 1\nmodel name\t: AMD EPYC\n")
    dmi = root / "sys/class/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "sys_vendor").write_text("LENOVO\n")
    (dmi / "product_name").write_text("ThinkPad T14\n")
    found = machine.identity(root)
    assert (found["board"], found["cpu"]["name"], found["cpu"]["cores"]) == ("LENOVO ThinkPad T14", "AMD EPYC", 2)
    odd = machine.cpu(fake_root(tmp_path / "odd", "processor\t: 0\nCPU implementer\t: 0x61\nCPU part\t: 0x022\n"))
    assert odd["name"] == "implementer 0x61 part 0x022"


def test_a_bench_written_with_out_carries_the_machine_and_the_figures(tmp_path, monkeypatch, capsys):
    """``station bench NAME --out FILE``: the file a user sends. The bench here is the motion
    bench's own throughput measurement, run short (the full bench takes minutes)."""
    from station.bench import motion
    from station.bench.motion_speed import measure_throughput

    def short_run(quick: bool = False) -> dict:
        fast = measure_throughput(size=(320, 240), frames=50, detector="station")
        return {"machine": {"cpus": 2, "python": "3.11"}, "throughput": {"station_320x240": fast}}

    monkeypatch.setattr(motion, "run", short_run)
    monkeypatch.setattr(motion, "print_report", lambda r: print(f"{len(r['throughput'])} throughput figure"))
    out = tmp_path / "pi4-motion.json"
    assert station_cli(["bench", "motion", "--quick", "--out", str(out)]) == 0
    shown = capsys.readouterr()
    assert shown.out.startswith("Machine: ") and "1 throughput figure" in shown.out
    assert f"station bench: wrote {out}" in shown.err
    report = json.loads(out.read_text())
    assert report["bench"] == "motion" and report["station_version"] and report["measured_at"].endswith("Z")
    assert report["throughput"]["station_320x240"]["frames_per_s"] > 0
    assert report["machine"]["cpus"] == 2 and report["machine"]["python"] == "3.11"  # the bench's own figures win
    assert {"board", "cpu", "kernel", "os", "packages", "architecture", "throttled"} <= set(report["machine"])


@pytest.mark.parametrize("where, says", [("missing/report.json", "no such folder"), (".", "is a folder")])
def test_a_bench_refuses_an_out_it_could_not_write_before_measuring_anything(tmp_path, monkeypatch, capsys,
                                                                             where, says):
    from station.bench import motion

    def must_not_run(quick: bool = False) -> dict:
        raise AssertionError("measured before the --out path was checked")

    monkeypatch.setattr(motion, "run", must_not_run)
    out = tmp_path / where
    assert station_cli(["bench", "motion", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"station bench: --out {out}: {says}") and err.count("\n") == 1
    assert bench_command.out_problem(tmp_path / "fine.json") is None
