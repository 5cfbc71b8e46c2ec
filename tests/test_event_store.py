"""The on-disk event store, the writer thread and disk care on a small SD card."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from station.events.model import Event, Still
from station.events.recovery import recover
from station.events.retention import DiskGuard
from station.events.store import EventStore, StoreError
from station.events.writer import EventWriter
from station.motion.types import Box
from tests.conftest import fill

T0 = 1_790_000_000.0


def make_event(i: int, n_stills: int = 3, size=(120, 160)) -> tuple[Event, list[np.ndarray]]:
    from station.events.ids import new_event_id

    start = T0 + i * 100
    event = Event(id=new_event_id(start), station_id="st", deployment_id="dep",
                  trigger_time=start + 1, start_time=start)
    rng = np.random.default_rng(i)
    images = [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(n_stills)]
    return event, images


def record_event(writer: EventWriter, i: int, n_stills: int = 3, size=(120, 160)) -> Event:
    event, images = make_event(i, n_stills, size)
    writer.opened(event)
    for k, image in enumerate(images):
        still = Still(k, event.start_time + k * 0.5, (Box(0.1, 0.2, 0.3, 0.4),), 0.02, k < 2)
        event.stills.append(still)
        writer.still(event, still, image)
    event.end_time = event.start_time + n_stills * 0.5
    event.end_reason = "motion_ended"
    writer.closed(event)
    return event


def jpeg_segments(data: bytes) -> list[int]:
    """Marker bytes of a JPEG's header segments, up to the start of scan."""
    assert data[:2] == b"\xff\xd8"
    pos, markers = 2, []
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
    return markers


def test_events_are_written_as_jpegs_and_one_json_record(tmp_path: Path):
    store = EventStore(tmp_path)
    closed = []
    writer = EventWriter(store, on_closed=closed.append).start()
    event = record_event(writer, 0)
    writer.stop()
    folder = store.event_dir(event.id)
    assert sorted(p.name for p in folder.iterdir()) == ["000.jpg", "001.jpg", "002.jpg", "event.json"]
    record = store.load(event.id)
    assert record["status"] == "closed"
    assert [f["file"] for f in record["frames"]] == ["000.jpg", "001.jpg", "002.jpg"]
    assert record["frames"][0]["boxes"] == [[0.1, 0.2, 0.3, 0.4]]
    assert closed and closed[0]["id"] == event.id
    assert not list(folder.glob(".*.tmp")), "no temporary files left behind"


def test_jpegs_carry_no_gps_or_any_exif(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    event = record_event(writer, 1)
    writer.stop()
    data = (store.event_dir(event.id) / "000.jpg").read_bytes()
    markers = jpeg_segments(data)
    assert 0xE1 not in markers, "APP1 (EXIF/XMP, where GPS would live) must not be present"
    assert b"Exif" not in data[:4096] and b"GPS" not in data[:4096]


def test_events_are_listed_oldest_first(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    ids = [record_event(writer, i).id for i in (3, 1, 2)]
    writer.stop()
    assert store.ids() == sorted(ids)
    assert [r["start_timestamp"] for r in store.records()] == sorted(T0 + i * 100 for i in (1, 2, 3))


def test_an_unreadable_record_is_named_and_skipped(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    good, bad = record_event(writer, 1).id, record_event(writer, 2).id
    writer.stop()
    (store.event_dir(bad) / "event.json").write_text("{ truncated")
    with pytest.raises(StoreError, match="event.json"):
        store.load(bad)
    assert [r["id"] for r in store.records()] == [good]


def test_later_stages_add_keys_without_losing_capture_data(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    event = record_event(writer, 0)
    writer.stop()
    store.update(event.id, classification={"tag": "leopard"})
    record = store.load(event.id)
    assert record["classification"] == {"tag": "leopard"} and len(record["frames"]) == 3


def test_an_event_cut_off_by_a_power_failure_is_recovered_at_start(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    event, images = make_event(0)
    writer.opened(event)
    for k, image in enumerate(images[:2]):
        still = Still(k, event.start_time + k * 0.5, (), 0.0, False)
        event.stills.append(still)
        writer.still(event, still, image)
    writer.stop()  # the daemon died here: no "closed" record
    (store.event_dir(event.id) / ".001.jpg.tmp").write_bytes(b"half a jpeg")
    assert store.load(event.id)["status"] == "open"
    assert recover(store).interrupted == [event.id]
    record = store.load(event.id)
    assert record["status"] == "closed" and record["end_reason"] == "interrupted"
    assert record["end_timestamp"] == pytest.approx(event.start_time + 0.5)
    assert len(record["frames"]) == 2
    assert not list(store.event_dir(event.id).glob(".*.tmp"))


class SlowStore(EventStore):
    """A store on a card that stalls (the real write happens, just late)."""

    def __init__(self, root, gate: threading.Event):
        super().__init__(root)
        self.gate = gate

    def write_still(self, *args, **kwargs):
        self.gate.wait(10)
        return super().write_still(*args, **kwargs)


def test_a_stalled_card_never_blocks_capture_and_drops_are_counted(tmp_path: Path):
    gate = threading.Event()
    store = SlowStore(tmp_path, gate)
    writer = EventWriter(store, max_pending_images=4).start()
    event, _ = make_event(0)
    writer.opened(event)
    t = time.monotonic()
    for k in range(20):
        still = Still(k, event.start_time + k * 0.5, (), 0.0, False)
        event.stills.append(still)
        writer.still(event, still, np.zeros((60, 80, 3), np.uint8))
    assert time.monotonic() - t < 1.0, "handing stills over must not wait for the disk"
    event.end_time, event.end_reason = event.start_time + 10, "motion_ended"
    writer.closed(event)
    gate.set()
    writer.stop()
    record = store.load(event.id)
    assert record["frames_dropped"] == 16
    written = [f for f in record["frames"] if f["file"]]
    assert len(written) == 4
    assert all(f["error"].startswith("dropped") for f in record["frames"] if not f["file"])


def fake_usage(free_mb: float):
    return lambda _path: SimpleNamespace(total=10**12, used=0, free=int(free_mb * 1024 * 1024))


def test_oldest_events_are_pruned_first_to_keep_the_floor(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    ids = [record_event(writer, i).id for i in range(5)]
    writer.stop()
    per_event_mb = store.event_size(ids[0]) / 2**20
    # Pretend the card is short of the floor by a bit more than two events' worth.
    usage = {"free": 100.0 - 2.5 * per_event_mb}

    def disk_usage(_):
        return SimpleNamespace(total=0, used=0, free=int(usage["free"] * 2**20))

    real_delete = store.delete

    def delete(eid):
        usage["free"] += store.event_size(eid) / 2**20
        real_delete(eid)

    store.delete = delete
    guard = DiskGuard(store, min_free_mb=100.0, disk_usage=disk_usage)
    report = guard.check()
    assert report.pruned == 3
    assert store.ids() == ids[3:]
    assert not report.low


def test_size_cap_prunes_oldest_and_respects_the_prunable_rule(tmp_path: Path):
    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    ids = [record_event(writer, i).id for i in range(6)]
    writer.stop()
    store.update(ids[0], delivery={"delivered": False})
    size_mb = store.size_bytes() / 2**20
    guard = DiskGuard(store, min_free_mb=0, max_size_mb=size_mb * 0.6, disk_usage=fake_usage(10_000),
                      prunable=lambda r: r.get("status") == "closed" and r.get("delivery", {}).get("delivered", True))
    guard.check()
    remaining = store.ids()
    assert ids[0] in remaining, "an undelivered event is never pruned"
    assert ids[1] not in remaining and ids[2] not in remaining
    assert store.size_bytes() / 2**20 <= size_mb * 0.6


def test_nothing_prunable_is_reported_not_fatal(tmp_path: Path, caplog):
    store = EventStore(tmp_path)
    guard = DiskGuard(store, min_free_mb=100, disk_usage=fake_usage(1))
    report = guard.check()
    assert report.low and guard.low


@pytest.fixture
def tiny_disk(tmpfs):
    """A real 1 MiB filesystem (tmpfs), to fill up for real. Needs root."""
    return tmpfs("1m")


def test_a_full_card_loses_no_event_record_and_never_crashes(tiny_disk: Path):
    store = EventStore(tiny_disk)
    store.ensure()
    fill(tiny_disk, 100 * 1024)  # something else filled the card: nothing of ours to prune
    guard = DiskGuard(store, min_free_mb=0.3)
    writer = EventWriter(store, guard=guard, check_interval_s=0.0).start()
    events = [record_event(writer, i, size=(240, 320)) for i in range(3)]
    assert writer.flush()
    assert guard.low
    for event in events:  # stills are skipped, records are kept
        record = store.load(event.id)
        assert record["status"] == "closed"
        assert all(f["file"] is None and "not saved" in f["error"] for f in record["frames"])

    fill(tiny_disk, 0)  # now truly full: not even a record fits
    late = record_event(writer, 9, size=(240, 320))
    assert writer.flush()
    with pytest.raises(StoreError):
        store.load(late.id)
    for filler in tiny_disk.glob("filler-*"):  # the ranger clears the card
        filler.unlink()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if store.load(late.id)["status"] == "closed":
                break
        except StoreError:
            time.sleep(0.1)
    else:
        pytest.fail("the record kept in memory was not written once room returned")
    writer.stop()


def test_the_guard_makes_room_on_a_real_full_card(tiny_disk: Path):
    store = EventStore(tiny_disk)
    writer = EventWriter(store).start()
    old = [record_event(writer, i, size=(240, 320)) for i in range(3)]  # ~620 KB
    writer.stop()
    guard = DiskGuard(store, min_free_mb=0.45)
    writer = EventWriter(store, guard=guard, check_interval_s=0.0).start()
    new = []
    for i in range(10, 14):
        new.append(record_event(writer, i, size=(240, 320)))
        assert writer.flush()
    assert writer.flush()
    writer.stop()
    remaining = set(store.ids())
    assert new[-1].id in remaining, "the newest event is kept"
    assert not {e.id for e in old} & remaining, "the oldest events went first"
    assert guard.free_bytes() >= 0.45 * 2**20


def test_a_delivery_mark_never_steps_back(tmp_path: Path):
    """The feed marks 'queued' after committing; a fast PUBACK may mark 'delivered' first."""
    from station.feed.service import FeedService

    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    event = record_event(writer, 0)
    writer.stop()
    feed = FeedService.__new__(FeedService)
    feed.store = store
    feed._mark(event.id, {"status": "delivered", "delivered_at": 2.0})
    feed._mark(event.id, {"status": "queued", "queued_at": 1.0})
    assert store.load(event.id)["delivery"] == {"status": "delivered", "delivered_at": 2.0}


# -- a full card and a stop (issue 15, M3) -----------------------------------------------------

IDENTITY = {"station_id": "st", "deployment_id": "dep", "camera": "synthetic:1"}


def test_records_a_full_card_held_go_into_the_reserve_at_a_stop_and_home_at_the_next_start(tmpfs):
    from station.events.reserve import RecordReserve

    disk = tmpfs("2m")
    store = EventStore(disk)
    reserve = RecordReserve(disk / "reserved-space", 256 * 1024)
    writer = EventWriter(store, reserve=reserve).start()
    assert reserve.held, "room set aside at start"
    filler = fill(disk)  # something else takes every byte left
    events = [record_event(writer, i, size=(240, 320)) for i in range(5)]
    assert writer.flush()
    for event in events:
        with pytest.raises(StoreError, match="no event record"):
            store.load(event.id)
    writer.stop()  # SIGTERM on a full card
    assert {r["id"] for r in reserve.records()} == {e.id for e in events}, "nothing was dropped"

    filler.unlink()  # the ranger makes room; the station starts again
    closed = []
    recovery = recover(store, reserve.records(), IDENTITY)
    writer = EventWriter(store, reserve=reserve, on_closed=closed.append).start(keep=recovery.unwritten)
    assert sorted(recovery.restored) == sorted(e.id for e in events) and not recovery.rebuilt
    for event in events:
        record = store.load(event.id)
        assert record["status"] == "closed" and record["end_reason"] == "motion_ended"
        assert all(f["file"] is None and f["error"].startswith("not saved") for f in record["frames"])
    assert reserve.records() == [] and reserve.held, "emptied and ready for the next stop"
    writer.stop()


def test_a_card_still_full_at_the_next_start_keeps_the_records_until_room_returns(tmpfs):
    from station.events.reserve import RecordReserve

    disk = tmpfs("2m")
    store = EventStore(disk)
    reserve = RecordReserve(disk / "reserved-space", 256 * 1024)
    writer = EventWriter(store, reserve=reserve).start()
    filler = fill(disk)
    events = [record_event(writer, i, size=(240, 320)) for i in range(3)]
    writer.stop()
    # Restart with the card still full: the records stay in memory and in the reserve.
    closed = []
    recovery = recover(store, reserve.records(), IDENTITY)
    assert {r["id"] for r in recovery.unwritten} == {e.id for e in events}
    writer = EventWriter(store, reserve=reserve, check_interval_s=0.0, on_closed=closed.append)
    writer.start(keep=recovery.unwritten)
    assert writer.flush()
    assert len(reserve.records()) == 3, "the reserve keeps them until they are home"
    filler.unlink()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(closed) < 3:
        time.sleep(0.05)
    assert sorted(r["id"] for r in closed) == sorted(e.id for e in events), "handed on once written"
    assert all(store.load(e.id)["status"] == "closed" for e in events)
    assert reserve.records() == []
    writer.stop()


def test_more_records_than_the_reserve_holds_are_rebuilt_from_their_stills_at_the_next_start(tmpfs):
    from station.events.reserve import RecordReserve

    disk = tmpfs("4m")
    store = EventStore(disk)
    reserve = RecordReserve(disk / "reserved-space", 4096)  # one page: room for a couple of records
    writer = EventWriter(store, reserve=reserve).start()
    # Stills are saved, then the card fills before the records can be.
    events = [make_event(i, n_stills=3, size=(240, 320)) for i in range(6)]
    for event, images in events:
        for k, image in enumerate(images):
            still = Still(k, event.start_time + k * 0.5, (), 0.02, False)
            event.stills.append(still)
            store.write_still(event.id, f"{k:03d}.jpg", image)
    filler = fill(disk)
    for event, _ in events:
        for still in event.stills:
            still.file = f"{still.index:03d}.jpg"
        event.end_time, event.end_reason = event.start_time + 1.5, "motion_ended"
        writer.closed(event)
    writer.stop()
    kept = {r["id"] for r in reserve.records()}
    assert 0 < len(kept) < 6
    filler.unlink()
    recovery = recover(store, reserve.records(), IDENTITY)
    assert set(recovery.restored) == kept
    assert set(recovery.rebuilt) == {e.id for e, _ in events} - kept
    for event_id in recovery.rebuilt:
        record = store.load(event_id)
        assert record["status"] == "closed" and record["end_reason"] == "rebuilt" and "rebuilt" in record
        assert record["station_id"] == "st" and record["deployment_id"] == "dep"
        assert [f["file"] for f in record["frames"]] == ["000.jpg", "001.jpg", "002.jpg"]
        start = next(e.start_time for e, _ in events if e.id == event_id)
        assert record["start_timestamp"] == pytest.approx(start, abs=0.001), "the id keeps the start"
        assert record["frames"][0]["timestamp"] == record["start_timestamp"]


def test_a_folder_left_without_a_record_gets_one_rebuilt_and_strays_are_left_alone(tmp_path: Path):
    from station.events.ids import event_id_time
    from station.record import record_problem

    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    lost, whole, broken = (record_event(writer, i) for i in range(3))
    writer.stop()
    (store.event_dir(lost.id) / "event.json").unlink()  # died before the record was written
    folder = store.event_dir(whole.id)  # died between writing the record and renaming it
    (folder / "event.json").rename(folder / ".event.json.tmp")
    record = store.load(broken.id)  # a record damaged by hand: open, frames not a list
    record.update(status="open", frames="000.jpg")
    store.write_record(record)
    (store.root / "not-an-event").mkdir()
    recovery = recover(store, identity=IDENTITY)
    assert recovery.rebuilt == [lost.id] and recovery.interrupted == []
    rebuilt = store.load(lost.id)
    assert record_problem(rebuilt) is None
    assert rebuilt["start_timestamp"] == pytest.approx(event_id_time(lost.id))
    assert [f["file"] for f in rebuilt["frames"]] == ["000.jpg", "001.jpg", "002.jpg"]
    assert store.load(whole.id)["end_reason"] == "motion_ended", "the finished temp record is used as it is"
    assert store.load(broken.id)["frames"] == "000.jpg", "a malformed record is named, not touched"
    assert (store.root / "not-an-event").is_dir()


def test_a_folder_with_no_still_and_no_record_still_becomes_an_event(tmp_path: Path):
    from station.events.ids import new_event_id

    store = EventStore(tmp_path)
    event_id = new_event_id(T0)
    store.event_dir(event_id).mkdir(parents=True)  # the card was full from the first still on
    recovery = recover(store, identity=IDENTITY)
    assert recovery.rebuilt == [event_id]
    record = store.load(event_id)
    assert record["frames"] == [] and record["end_timestamp"] == record["start_timestamp"]


def test_the_reserve_keeps_what_it_holds_when_made_again_or_made_bigger(tmp_path: Path):
    from station.events.reserve import RecordReserve

    path = tmp_path / "reserved-space"
    small = RecordReserve(path, 8192)
    assert small.make() and small.held and small.records() == []
    records = [{"id": f"e{i}", "status": "closed", "note": "x" * 3000} for i in range(4)]
    assert small.keep(records) == ["e0", "e1"], "as many as fit, in order"
    bigger = RecordReserve(path, 65536)  # storage.reserve_mb raised meanwhile
    assert bigger.make() and bigger.held
    assert [r["id"] for r in bigger.records()] == ["e0", "e1"]
    assert len(bigger.keep(records)) == 4
    bigger.clear()
    assert bigger.records() == [] and bigger.held and not bigger.dirty
    assert RecordReserve(tmp_path / "off", 0).make() is False and not (tmp_path / "off").exists()


def test_one_malformed_record_never_stops_the_events_listing(tmp_path: Path):
    import json
    import subprocess
    import sys

    store = EventStore(tmp_path)
    writer = EventWriter(store).start()
    good, bad, truncated = (record_event(writer, i) for i in range(3))
    writer.stop()
    record = store.load(bad.id)
    record["frames"] = "000.jpg"  # edited by hand
    store.write_record(record)
    (store.event_dir(truncated.id) / "event.json").write_text("{ truncated")
    out = subprocess.run([sys.executable, "-m", "station", "events", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith(good.id) and "motion_ended" in line for line in lines)
    bad_file = store.event_dir(bad.id) / "event.json"
    assert f"{bad.id}  malformed: {bad_file}: frames is a string '000.jpg', not a list" in lines
    assert any(line.startswith(f"{truncated.id}  malformed: ") and "unreadable event record" in line
               for line in lines)
    assert lines[-1] == f"3 event(s) in {tmp_path}, 2 malformed"
    as_json = subprocess.run([sys.executable, "-m", "station", "events", "--data-dir", str(tmp_path), "--json"],
                             capture_output=True, text=True, timeout=60)
    assert as_json.returncode == 1
    assert {r["id"] for r in json.loads(as_json.stdout)} == {good.id, bad.id}
    assert f"malformed: {bad_file}: frames is a string" in as_json.stderr
