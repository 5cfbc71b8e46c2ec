"""Watt-hours per day: integrated between readings, split at local midnight, kept on the
card across a restart, never bridged over a gap, and a bad file is set aside."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from station.power.energy import ENERGY_FILE, EnergyLedger
from station.power.ina219 import INA219
from station.power.pi import PiFlagsReader
from station.power.sampler import PowerSampler
from tests.power_fakes import FakeINA219Bus, pi4_sys, set_undervoltage

VLAD = ZoneInfo("Asia/Vladivostok")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=VLAD).timestamp()


def ledger(tmp_path, **kw) -> EnergyLedger:
    return EnergyLedger(tmp_path / ENERGY_FILE, VLAD, max_gap_s=kw.pop("max_gap_s", 30), **kw)


def feed(book: EnergyLedger, start: float, seconds: int, watts, step: int = 10) -> float:
    t = start
    for i in range(0, seconds + 1, step):
        t = start + i
        book.add(t, watts(i) if callable(watts) else watts)
    return t


def test_a_station_drawing_5_watts_for_an_hour_used_5_watt_hours(tmp_path):
    book = ledger(tmp_path)
    end = feed(book, at("2026-11-25 10:00"), 3600, 5.0)
    totals = book.totals(end)
    assert totals.day == "2026-11-25" and totals.wh_today == pytest.approx(5.0)
    assert totals.covered_s == 3600 and totals.wh_yesterday is None


def test_power_between_readings_is_a_straight_line(tmp_path):
    book = ledger(tmp_path)
    end = feed(book, at("2026-11-25 10:00"), 3600, lambda i: 2.0 + 4.0 * i / 3600)   # 2 W rising to 6 W
    assert book.totals(end).wh_today == pytest.approx(4.0)


def test_midnight_splits_the_reading_that_spans_it_between_the_two_days(tmp_path):
    book = ledger(tmp_path)
    feed(book, at("2026-11-25 23:00"), 3590, 3.0)            # 23:00 to 23:59:50 at 3 W
    book.add(at("2026-11-26 00:00:10"), 5.0)                 # 20 s across midnight, 3 W rising to 5 W
    totals = book.totals(at("2026-11-26 00:00:10"))
    assert totals.day == "2026-11-26"
    assert totals.wh_today == pytest.approx((4.0 + 5.0) / 2 * 10 / 3600)                 # 4 W at midnight
    assert totals.wh_yesterday == pytest.approx(3.0 * 3590 / 3600 + (3.0 + 4.0) / 2 * 10 / 3600)
    assert totals.covered_s == 10


def test_a_restart_carries_on_with_the_day_and_bridges_a_quick_one(tmp_path):
    first = ledger(tmp_path)
    end = feed(first, at("2026-11-25 10:00"), 1800, 4.0)
    first.save()                                             # the sampler's stop()
    second = ledger(tmp_path)
    second.load()
    end = feed(second, end + 10, 1790, 4.0)                  # a service restart: the next reading 10 s later
    totals = second.totals(end)
    assert totals.wh_today == pytest.approx(4.0) and totals.covered_s == 3600


def test_a_reboot_keeps_the_day_but_does_not_invent_the_time_it_was_off(tmp_path):
    first = ledger(tmp_path)
    end = feed(first, at("2026-11-25 10:00"), 1800, 4.0)
    first.save()
    second = ledger(tmp_path)
    second.load()
    end = feed(second, end + 600, 1800, 4.0)                 # ten minutes off
    totals = second.totals(end)
    assert totals.wh_today == pytest.approx(4.0) and totals.covered_s == 3600


def test_a_reboot_after_midnight_finds_yesterday_complete_and_today_new(tmp_path):
    first = ledger(tmp_path)
    feed(first, at("2026-11-25 22:00"), 7190, 2.0)           # to 23:59:50
    first.save()
    second = ledger(tmp_path)
    second.load()
    end = feed(second, at("2026-11-26 00:05"), 600, 3.0)
    totals = second.totals(end)
    assert totals.day == "2026-11-26" and totals.wh_today == pytest.approx(0.5)
    assert totals.wh_yesterday == pytest.approx(2.0 * 7190 / 3600)
    saved = json.loads((tmp_path / ENERGY_FILE).read_text())
    assert set(saved["days"]) == {"2026-11-25", "2026-11-26"}, "the new day is written at once"


def test_a_power_cut_loses_at_most_the_minutes_since_the_last_save(tmp_path):
    first = ledger(tmp_path, save_every_s=300)
    feed(first, at("2026-11-25 10:00"), 3600, 6.0)           # no stop(): the power was cut
    second = ledger(tmp_path)
    second.load()
    kept = second.totals(at("2026-11-25 11:00")).wh_today
    assert 6.0 - 6.0 * 300 / 3600 <= kept <= 6.0


def test_drawing_nothing_or_a_negative_reading_counts_as_zero_and_a_failed_reading_breaks_the_chain(tmp_path):
    book = ledger(tmp_path)
    t = at("2026-11-25 10:00")
    for i, watts in enumerate([-0.002, -0.001, 0.0, 2.0, None, 2.0, 2.0]):
        book.add(t + 10 * i, watts)
    totals = book.totals(t + 60)
    assert totals.wh_today == pytest.approx((1.0 * 10 + 2.0 * 10) / 3600)   # 0->2 W ramp, then 2 W after the gap
    assert totals.covered_s == 40


def test_a_clock_that_steps_back_is_not_counted_as_negative_time(tmp_path):
    book = ledger(tmp_path)
    t = at("2026-11-25 10:00")
    book.add(t, 5.0)
    book.add(t - 3600, 5.0)
    book.add(t - 3590, 5.0)
    assert book.totals(t - 3590).wh_today == pytest.approx(5.0 * 10 / 3600)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "power-energy/1",
                                     "days": {"2026-11-25": {"wh": 1e12, "covered_s": 100}}, "last": None})])
def test_a_watt_hour_file_that_cannot_be_right_is_set_aside_and_counting_starts_again(tmp_path, content):
    (tmp_path / ENERGY_FILE).write_text(content)
    book = ledger(tmp_path)
    book.load()
    assert book.days == {} and (tmp_path / (ENERGY_FILE + ".bad")).read_text() == content
    end = feed(book, at("2026-11-25 10:00"), 60, 1.0)
    book.save()
    assert book.totals(end).wh_today == pytest.approx(1.0 / 60)


# -- the sampler: monitor, flags and ledger together ----------------------------------------------
def test_the_sampler_counts_undervoltage_episodes_and_reports_a_dead_monitor_by_name(tmp_path, caplog):
    root = pi4_sys(tmp_path / "sys")
    chip = FakeINA219Bus()
    chip.set(12.4, 0.25)
    clock = [at("2026-11-25 10:00")]
    book = ledger(tmp_path)
    sampler = PowerSampler(open_monitor=lambda: INA219(chip, 0x40, 0.1, bus_number=1), monitor_name="ina219",
                           flags=PiFlagsReader(root, vcgencmd=None), ledger=book, interval_s=10,
                           clock=lambda: clock[0])
    for under in (False, True, True, False, True):
        set_undervoltage(root, under)
        state = sampler.sample()
        clock[0] += 10
    assert state.undervoltage_events == 2 and state.flags.undervoltage is True
    warned = [r for r in caplog.records if "under-voltage" in r.getMessage()]
    assert len(warned) == 1, "a supply dipping again within ten minutes is counted, not logged again"
    assert state.reading.battery_v == pytest.approx(12.4, abs=0.004) and state.monitor_error is None
    assert state.energy.wh_today == pytest.approx(state.reading.power_w * 40 / 3600, rel=1e-3)

    chip.present = False
    state = sampler.sample()
    assert state.reading is None and "i2c-1 at 0x40" in state.monitor_error
    clock[0] += 10
    chip.present = True
    state = sampler.sample()
    assert state.monitor_error is None and state.energy.covered_s == 40, "the failed reading was not bridged"
    sampler.stop()
    assert json.loads((tmp_path / ENERGY_FILE).read_text())["last"]["t"] == clock[0], "stop() saves"
