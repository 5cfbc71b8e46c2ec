"""Machine facts for the health heartbeat."""

from pathlib import Path

from station import sysinfo


def write_zone(root: Path, n: int, kind: str, milli: str) -> None:
    zone = root / f"thermal_zone{n}"
    zone.mkdir(parents=True)
    (zone / "type").write_text(kind + "\n")
    (zone / "temp").write_text(milli + "\n")


def test_the_pi_cpu_zone_is_preferred(tmp_path):
    write_zone(tmp_path, 0, "acpitz", "45000")
    write_zone(tmp_path, 1, "cpu-thermal", "61234")
    assert sysinfo.cpu_temperature_c(tmp_path) == 61.2


def test_no_thermal_zone_means_unknown_not_zero(tmp_path):
    assert sysinfo.cpu_temperature_c(tmp_path) is None
    write_zone(tmp_path, 0, "cpu-thermal", "not a number")
    assert sysinfo.cpu_temperature_c(tmp_path) is None


def test_memory_and_clock_facts_have_their_shape():
    mem = sysinfo.memory_mb()
    assert mem["total_mb"] > mem["available_mb"] > 0 and mem["process_rss_mb"] > 0
    clock = sysinfo.clock_sync()
    assert set(clock) == {"synchronized", "source", "offset_s"}
    assert clock["synchronized"] in (True, False, None)
