"""The Pi's own supply and heat, read from the kernel's files: fake /sys trees of a Pi 4
and a Pi 5, with and without under-voltage; vcgencmd only as a fallback; nothing, and no
error, anywhere else."""

from __future__ import annotations

from station import sysinfo
from station.config import parse_config
from station.power import build_sampler
from station.power.pi import PiFlagsReader, parse_throttled
from tests.power_fakes import fake_vcgencmd, pi4_sys, pi5_sys, set_undervoltage, vcgencmd_calls


def test_a_pi_4_on_a_good_supply_reads_no_undervoltage_and_its_soc_temperature(tmp_path):
    root = pi4_sys(tmp_path / "sys")
    flags = PiFlagsReader(root, vcgencmd=None).read()
    assert flags.source == "hwmon" and flags.undervoltage is False
    assert (flags.throttled, flags.frequency_capped, flags.soft_temperature_limit) == (False, False, False)
    assert sysinfo.cpu_temperature_c(root / "class/thermal") == 48.7


def test_a_pi_4_on_a_sagging_supply_is_undervoltage_and_throttled(tmp_path):
    root = pi4_sys(tmp_path / "sys", undervoltage=True)   # get_throttled 50005: under-voltage, throttled
    flags = PiFlagsReader(root, vcgencmd=None).read()
    assert flags.undervoltage is True and flags.throttled is True and flags.frequency_capped is False


def test_a_pi_4_kernel_without_hwmon_still_has_get_throttled(tmp_path):
    root = pi4_sys(tmp_path / "sys", throttled_word=0x8000A)   # capped and soft limit now; soft limit before
    for path in root.glob("class/hwmon/hwmon1/*"):
        path.unlink()
    (root / "class/hwmon/hwmon1").rmdir()
    flags = PiFlagsReader(root, vcgencmd=None).read()
    assert flags.source == "get_throttled" and flags.undervoltage is False
    assert flags.frequency_capped is True and flags.soft_temperature_limit is True and flags.throttled is False


def test_a_pi_5_reads_undervoltage_from_rpi_volt_wherever_its_hwmon_number_lands(tmp_path):
    good = PiFlagsReader(pi5_sys(tmp_path / "good"), vcgencmd=None).read()
    assert good.source == "hwmon" and good.undervoltage is False
    assert good.throttled is None, "no get_throttled on a Pi 5 and no vcgencmd: unknown, not False"
    root = pi5_sys(tmp_path / "bad", undervoltage=True)
    assert PiFlagsReader(root, vcgencmd=None).read().undervoltage is True
    set_undervoltage(root, False)
    assert PiFlagsReader(root, vcgencmd=None).read().undervoltage is False
    assert sysinfo.cpu_temperature_c(root / "class/thermal") == 55.1


def test_vcgencmd_fills_in_what_the_files_do_not_say(tmp_path):
    tool = fake_vcgencmd(tmp_path / "bin", "throttled=0x50006")   # capped and throttled now
    reader = PiFlagsReader(pi5_sys(tmp_path / "sys"), vcgencmd=str(tool))
    flags = reader.read()
    assert flags.source == "hwmon" and flags.undervoltage is False, "hwmon's word wins for under-voltage"
    assert flags.throttled is True and flags.frequency_capped is True
    assert vcgencmd_calls(tool) == 1


def test_a_vcgencmd_that_cannot_reach_the_firmware_is_not_asked_again(tmp_path):
    # Under the hardened service /dev/vcio cannot be opened: the tool fails, every time.
    tool = fake_vcgencmd(tmp_path / "bin", "VCHI initialization failed", status=255)
    reader = PiFlagsReader(pi5_sys(tmp_path / "sys"), vcgencmd=str(tool))
    for _ in range(3):
        flags = reader.read()
    assert flags.undervoltage is False and flags.throttled is None
    assert vcgencmd_calls(tool) == 1


def test_vcgencmd_alone_is_enough_on_a_pi_without_the_files(tmp_path):
    tool = fake_vcgencmd(tmp_path / "bin", "throttled=0x50005")
    flags = PiFlagsReader(tmp_path / "empty-sys", vcgencmd=str(tool)).read()
    assert flags.source == "vcgencmd" and flags.undervoltage is True and flags.throttled is True


def test_a_laptop_has_no_flags_and_no_power_sampler_and_that_is_not_an_error(tmp_path):
    (tmp_path / "sys/class/hwmon/hwmon0").mkdir(parents=True)
    (tmp_path / "sys/class/hwmon/hwmon0/name").write_text("coretemp\n")
    assert PiFlagsReader(tmp_path / "sys", vcgencmd=None).read() is None
    assert PiFlagsReader(tmp_path / "nothing", vcgencmd="no-such-vcgencmd").read() is None
    cfg = parse_config({"station": {"id": "t1", "deployment_id": "d", "latitude": 1.0, "longitude": 2.0},
                        "storage": {"data_dir": str(tmp_path / "data")}})
    assert build_sampler(cfg, sys_root=tmp_path / "sys", vcgencmd=None) is None
    sampler = build_sampler(cfg, sys_root=pi5_sys(tmp_path / "pi5"), vcgencmd=None)
    state = sampler.sample()
    assert state.flags.undervoltage is False and state.monitor is None and state.energy is None


def test_get_throttled_words_in_both_spellings():
    assert parse_throttled("50005\n") == parse_throttled("throttled=0x50005\n") == 0x50005
    assert parse_throttled("0") == 0
    for bad in ("", "throttled=", "zz", "1ffffffff"):
        try:
            parse_throttled(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")
