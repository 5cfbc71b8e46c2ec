"""The on-disk event store, the writer thread and disk care on a small SD card."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from station.events.model import Event, Still
from station.events.retention import DiskGuard
from station.events.store import EventStore, StoreError
from station.events.writer import EventWriter
from station.motion.types import Box

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
    assert store.recover() == [event.id]
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
def tiny_disk(tmp_path: Path):
    """A real 1 MiB filesystem (tmpfs), to fill up for real. Needs root."""
    mnt = tmp_path / "sd"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def fill(path: Path, leave_bytes: int) -> None:
    """Fill the filesystem at ``path`` with a filler file, leaving about ``leave_bytes`` free."""
    import shutil as sh

    free = sh.disk_usage(path).free
    with open(path / f"filler-{time.monotonic_ns()}", "wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - leave_bytes))
        except OSError:
            pass


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
