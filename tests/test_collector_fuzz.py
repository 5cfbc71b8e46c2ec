"""A storm of hostile messages against a real collector, on SQLite and PostgreSQL alike.

Nine categories of what an adversarial station (or a broken one) sends, a couple of
hundred of each (``station bench fuzz`` sends thousands): bytes that are not UTF-8 or
JSON, NaN and numbers that overflow, lone surrogates and NUL, impossible times, huge and
deep ``extra``, schema violations, payloads on another station's topic, thumbnails hiding
metadata after the scan or bytes after the end, and clocks from the future. Each case
knows what it is owed (:mod:`station.bench.hostile`); a real ``station collector``
process ingests them from a real Mosquitto (:mod:`station.bench.fuzz`), then:

* it is alive, and stops cleanly;
* every rejection is counted exactly, by reason, in its counters and in the database;
* what is valid is stored, and so is every valid message sent after the storm; every
  station's honest "stopping" shows it offline, however far ahead its clock had run;
* the API and both exports answer for every station.
"""

from __future__ import annotations

import pytest

from station.bench import fuzz, hostile
from tests.broker import make_broker
from tests.collector_data import postgres_schema

PER_CATEGORY = 200


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    """One storm, ridden by a collector on each engine (about half a minute in all)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    broker = make_broker(tmp / "broker").start()
    try:
        engines = [("sqlite", "sqlite:///collector.sqlite3")]
        with postgres_schema() as pg_url:
            engines.append(("postgresql", pg_url))
            yield fuzz.run(PER_CATEGORY, seed=15, engines=engines, broker=broker, workdir=tmp / "runs")
    finally:
        broker.stop()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_storm_of_hostile_messages_is_ridden_out_and_every_refusal_counted(storm, engine):
    e = storm["engines"][engine]
    assert storm["cases"] == {c: PER_CATEGORY for c in hostile.CATEGORIES}
    assert e["problems"] == []
    assert e["alive"] and e["exit_code"] == 0
    owed = e["expected_rejections"]
    assert e["counted_rejections"] == owed and e["database_rejections"] == owed
    assert set(owed) >= {"not_json", "not_object", "invalid", "too_large", "bad_topic", "station_mismatch",
                         "kind_mismatch", "unknown_schema", "unknown_version", "bad_thumbnail"}
    assert e["counted_stored"] == e["expected_stored"] and all(e["expected_stored"].values())


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_after_the_storm_valid_messages_are_stored_and_no_clock_pinned_a_station(storm, engine):
    after = storm["engines"][engine]["after"]
    assert after["stored"] == after["sent"] > 0
    assert after["offline"] == after["stations"] == len(hostile.STATIONS + hostile.CLOCK_STATIONS)
    assert after["clock_flagged"] == after["clock_stations"] == len(hostile.CLOCK_STATIONS)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_after_the_storm_the_api_and_both_exports_answer_for_every_station(storm, engine):
    e = storm["engines"][engine]
    assert e["api"]["failed"] == [] and e["api"]["skipped_rows"] == []
    exports = e["exports"]
    assert exports["failed"] == [] and exports["ok"] == 2 * e["after"]["stations"]  # CSV and Camtrap DP each
    assert {k: v["exit"] for k, v in exports["cli"].items()} == {"csv": 0, "camtrap-dp": 0}
    assert not any(v["traceback"] for v in exports["cli"].values())
