"""The outbox: nothing committed is lost, the cap drops thumbnails before detections."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from station.feed.outbox import ROW_OVERHEAD, Outbox

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "camtrap/v1/test-01/detection"
THUMB = "camtrap/v1/test-01/thumbnail"


def detection(outbox: Outbox, n: int, size: int = 100) -> bool:
    return outbox.put(TOPIC, bytes([n % 256]) * size, kind="detection", message_id=f"det-{n}")


def thumbnail(outbox: Outbox, n: int, size: int = 1000) -> bool:
    return outbox.put(THUMB, bytes([n % 256]) * size, kind="thumbnail", message_id=f"thumb-{n}")


def ids(outbox: Outbox) -> list[str]:
    return [r.message_id for r in outbox.peek(limit=10_000)]


def row_bytes(topic: str, size: int) -> int:
    return len(topic) + size + ROW_OVERHEAD


def test_messages_come_out_oldest_first_and_leave_only_when_removed(tmp_path):
    with Outbox(tmp_path / "outbox.sqlite3", 10_000_000) as outbox:
        for n in range(5):
            assert detection(outbox, n)
        rows = outbox.peek(limit=3)
        assert [r.message_id for r in rows] == ["det-0", "det-1", "det-2"]
        assert [r.message_id for r in outbox.peek(after_id=rows[-1].id)] == ["det-3", "det-4"]
        assert rows[0].topic == TOPIC and rows[0].qos == 1 and rows[0].retain is False
        assert rows[0].payload == bytes([0]) * 100
        assert outbox.remove(rows[1].id) and not outbox.remove(rows[1].id)
        assert ids(outbox) == ["det-0", "det-2", "det-3", "det-4"]
        stats = outbox.stats()
        assert stats.depth == 4 and stats.depth_by_kind == {"detection": 4}
        assert stats.bytes == 4 * row_bytes(TOPIC, 100)
        assert stats.oldest_age_s is not None and stats.oldest_age_s >= 0


def test_the_same_detection_enqueued_twice_is_kept_once(tmp_path):
    with Outbox(tmp_path / "outbox.sqlite3", 10_000_000) as outbox:
        assert detection(outbox, 1)
        assert not detection(outbox, 1)
        assert ids(outbox) == ["det-1"]
        assert len(outbox) == 1


def test_the_queue_and_its_counters_survive_a_restart(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    cap = 3 * row_bytes(TOPIC, 100)
    with Outbox(path, cap) as outbox:
        for n in range(3):
            detection(outbox, n)
        assert not thumbnail(outbox, 0, size=10)  # no room and no thumbnail to evict: refused
        outbox.put(TOPIC, b"retained", qos=0, retain=True, kind="status", message_id="status-1")
    with Outbox(path, cap) as outbox:
        assert ids(outbox) == ["det-0", "det-1", "det-2"]
        stats = outbox.stats()
        assert stats.refused == {"thumbnail": 1, "status": 1}
        assert stats.full


def test_a_full_outbox_evicts_the_oldest_thumbnails_to_keep_detections(tmp_path, caplog):
    cap = 2 * row_bytes(TOPIC, 100) + 2 * row_bytes(THUMB, 1000)
    with Outbox(tmp_path / "outbox.sqlite3", cap) as outbox:
        detection(outbox, 0)
        thumbnail(outbox, 0)
        detection(outbox, 1)
        thumbnail(outbox, 1)
        assert outbox.bytes == cap and not outbox.full
        with caplog.at_level(logging.WARNING, logger="station.outbox"):
            assert detection(outbox, 2)
        assert ids(outbox) == ["det-0", "det-1", "thumb-1", "det-2"]
        assert outbox.stats().evicted == {"thumbnail": 1}
        assert "thumbnails evicted" in caplog.text
        # A new thumbnail may push out an older one...
        assert thumbnail(outbox, 2, size=900)
        assert ids(outbox) == ["det-0", "det-1", "det-2", "thumb-2"]
        assert outbox.stats().evicted == {"thumbnail": 2}
        # ...but never a detection: with no older thumbnail to evict it is refused.
        assert not thumbnail(outbox, 3, size=2000)
        assert ids(outbox) == ["det-0", "det-1", "det-2", "thumb-2"]
        assert outbox.stats().refused == {"thumbnail": 1}
        assert outbox.full


def test_detections_are_never_dropped_when_only_detections_are_left(tmp_path, caplog):
    cap = 3 * row_bytes(TOPIC, 100)
    with Outbox(tmp_path / "outbox.sqlite3", cap) as outbox:
        for n in range(3):
            detection(outbox, n)
        assert not outbox.full
        with caplog.at_level(logging.WARNING, logger="station.outbox"):
            for n in range(3, 6):
                assert detection(outbox, n)
        assert ids(outbox) == [f"det-{n}" for n in range(6)]
        stats = outbox.stats()
        assert stats.full and stats.bytes > cap
        assert stats.stored_over_cap == 3
        assert stats.evicted == {} and stats.refused == {}
        assert caplog.text.count("outbox full") == 1  # said once, not once per detection
        # Delivery brings it back under 90 % of the cap, and the flag clears.
        outbox.remove_many(r.id for r in outbox.peek(limit=4))
        assert not outbox.full


def test_puts_from_many_threads_are_all_kept(tmp_path):
    with Outbox(tmp_path / "outbox.sqlite3", 10_000_000) as outbox:
        def worker(t: int) -> None:
            for n in range(25):
                outbox.put(TOPIC, b"x" * 50, message_id=f"t{t}-{n}")
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(outbox) == 100
        assert len(set(ids(outbox))) == 100


KILL_SCRIPT = """
import sys
from station.feed.outbox import Outbox
outbox = Outbox(sys.argv[1], 100_000_000)
n = 0
while True:
    if outbox.put("camtrap/v1/test-01/detection", b"d" * 1500, message_id=f"kill-{n}"):
        print(n, flush=True)
    n += 1
"""


def test_sigkill_in_the_middle_of_a_burst_loses_no_committed_detection(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    printed = []
    try:
        for line in proc.stdout:
            printed.append(int(line))
            if len(printed) >= 200:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        printed += [int(line) for line in proc.stdout.read().split()]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert len(printed) >= 200
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Outbox(path, 100_000_000) as outbox:
        stored = set(ids(outbox))
    assert {f"kill-{n}" for n in printed} <= stored


def test_a_corrupt_outbox_is_moved_aside_and_the_station_goes_on(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path, 10_000_000) as outbox:
        for n in range(300):
            detection(outbox, n, size=1000)
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the damage below hits real pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[4096 * 3: 4096 * 6] = b"\xff" * (4096 * 3)
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR, logger="station.outbox"):
        with Outbox(path, 10_000_000) as outbox:
            moved = [r.fields["moved_to"] for r in caplog.records if "corrupt" in r.getMessage()]
            assert len(moved) == 1 and ".corrupt-" in moved[0]
            assert len(outbox) == 0
            assert detection(outbox, 1)
            assert ids(outbox) == ["det-1"]
            assert outbox.stats().recovered_from_corruption == 1
    aside = list(tmp_path.glob("outbox.sqlite3.corrupt-*"))
    assert len([p for p in aside if not p.name.endswith(("-wal", "-shm"))]) == 1


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with Outbox(path, 10_000_000) as outbox:
        assert detection(outbox, 0)
    assert len(list(tmp_path.glob("outbox.sqlite3.corrupt-*"))) == 1


def test_a_topic_that_cannot_be_published_is_refused_at_once(tmp_path):
    with Outbox(tmp_path / "outbox.sqlite3", 10_000) as outbox:
        with pytest.raises(ValueError, match="topic"):
            outbox.put("camtrap/v1/+/detection", b"x")
        with pytest.raises(ValueError, match="qos"):
            outbox.put(TOPIC, b"x", qos=3)


class _CorruptConnection:
    """Stands in for a connection whose file went bad under it."""

    in_transaction = False

    def __init__(self, real: sqlite3.Connection):
        self.real = real

    def execute(self, *args):
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorname = "SQLITE_CORRUPT"
        raise exc

    def close(self) -> None:
        self.real.close()


def test_corruption_found_while_running_is_recovered_and_ids_keep_rising(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path, 10_000_000) as outbox:
        for n in range(3):
            detection(outbox, n)
        last_id = outbox.peek(limit=10)[-1].id
        outbox._conn = _CorruptConnection(outbox._conn)
        assert outbox.peek() == []  # moved aside, a new file started
        assert detection(outbox, 3)
        rows = outbox.peek()
        assert [r.message_id for r in rows] == ["det-3"]
        assert rows[0].id > last_id  # a publisher's cursor from before stays valid
    assert len(list(tmp_path.glob("outbox.sqlite3.corrupt-*"))) >= 1
