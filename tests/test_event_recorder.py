"""The event state machine: pre-trigger, burst of stills, post-motion tail, cap, cooldown."""

from __future__ import annotations

import numpy as np
import pytest

from station.camera.base import Frame
from station.config.events import EventsSection
from station.events.ids import event_id_time, new_event_id
from station.events.recorder import EventRecorder
from station.motion.types import Box, MotionResult

FPS = 10
PERIOD = 1 / FPS
T0 = 1_790_000_000.0




class Sink:
    def __init__(self):
        self.opened_events, self.stills, self.closed_events = [], [], []

    def opened(self, event):
        self.opened_events.append(event)

    def still(self, event, still, image):
        self.stills.append((event.id, still, image))

    def closed(self, event):
        self.closed_events.append(event)


MOVING = MotionResult(True, 0.05, (Box(0.4, 0.4, 0.2, 0.2),), 0.05)
STILL = MotionResult.still()


def drive(recorder: EventRecorder, pattern: list[bool], start_index: int = 0):
    """Feed one frame per entry (True = motion), asking for main frames as the daemon does."""
    for i, moving in enumerate(pattern, start_index):
        ts = T0 + i * PERIOD
        want = recorder.still_due(ts)
        frame = Frame(i, ts, np.zeros((9, 16), np.uint8),
                      np.full((18, 32, 3), i % 256, np.uint8) if want else None)
        recorder.feed(frame, MOVING if moving else STILL)


def make(**cfg) -> tuple[EventRecorder, Sink]:
    sink = Sink()
    defaults = dict(pre_trigger_s=2.0, still_interval_s=0.5, post_motion_s=2.0, max_length_s=30,
                    cooldown_s=3.0, trigger_frames=2)
    defaults.update(cfg)
    return EventRecorder(EventsSection(**defaults), "st", "dep", sink, frame_period_s=PERIOD), sink


def test_quiet_scene_makes_no_event():
    rec, sink = make()
    drive(rec, [False] * 300)
    assert sink.opened_events == [] and sink.closed_events == []


def test_event_begins_before_the_trigger_and_loses_nothing():
    rec, sink = make()
    drive(rec, [False] * 50 + [True] * 30 + [False] * 40)
    (event,) = sink.closed_events
    trigger = T0 + 50 * PERIOD
    assert event.trigger_time == pytest.approx(trigger)
    # Stills from the pre-trigger buffer cover (almost) the whole pre_trigger_s window.
    assert trigger - event.start_time >= 2.0 - 0.5 - 1e-6
    pre = [s for s in event.stills if s.pre_trigger]
    assert len(pre) >= 3
    assert all(s.timestamp < trigger for s in pre)
    assert event.stills[0].timestamp == pytest.approx(event.start_time)
    # Stills keep coming at the interval while motion continues, then the tail.
    times = [s.timestamp for s in event.stills]
    assert np.all(np.diff(times) <= 0.5 + 1e-6)
    assert event.end_reason == "motion_ended"
    assert event.end_time == pytest.approx(T0 + 79 * PERIOD + 2.0)
    assert event.motion_frames == 30


def test_single_frame_flicker_does_not_trigger():
    rec, sink = make(trigger_frames=2)
    drive(rec, ([True] + [False] * 10) * 10)
    assert sink.opened_events == []


def test_a_still_is_ready_at_the_trigger_frame():
    rec, sink = make(pre_trigger_s=0.0, still_interval_s=5.0)
    drive(rec, [False] * 30 + [True] * 5 + [False] * 40)
    (event,) = sink.closed_events
    assert event.stills, "the event must have a still from the moment motion started"
    assert event.stills[0].timestamp - event.trigger_time <= 2 * PERIOD + 1e-9


def test_long_motion_is_capped_at_max_length_then_cooldown_then_new_event():
    rec, sink = make(max_length_s=5.0, cooldown_s=3.0, pre_trigger_s=0.0)
    drive(rec, [True] * 200)
    assert len(sink.closed_events) >= 2
    first, second = sink.closed_events[:2]
    assert first.end_reason == "max_length"
    assert first.end_time - first.start_time == pytest.approx(5.0, abs=0.11)
    assert second.trigger_time - first.end_time >= 3.0 - 1e-6


def test_motion_during_cooldown_is_ignored():
    rec, sink = make(cooldown_s=10.0, post_motion_s=1.0)
    # Event 1 closes at 1.9 s; motion at 2.0-4.9 s falls in its cooldown; motion at 13 s counts.
    drive(rec, [True] * 10 + [False] * 10 + [True] * 30 + [False] * 80 + [True] * 10 + [False] * 50)
    assert len(sink.opened_events) == 2
    assert sink.opened_events[1].trigger_time == pytest.approx(T0 + 130 * PERIOD)


def test_light_jumps_do_not_count_as_motion():
    rec, sink = make()
    jump = MotionResult.still(changed_fraction=0.9, light_jump=True)
    for i in range(100):
        ts = T0 + i * PERIOD
        rec.feed(Frame(i, ts, np.zeros((9, 16), np.uint8), None), jump)
    assert sink.opened_events == []


def test_interrupt_closes_the_open_event():
    rec, sink = make()
    drive(rec, [False] * 10 + [True] * 10)
    assert rec.current is not None
    rec.interrupt("shutdown")
    (event,) = sink.closed_events
    assert event.end_reason == "shutdown"
    assert event.end_time == pytest.approx(T0 + 19 * PERIOD)
    assert rec.current is None


def test_stills_without_boxes_borrow_recent_motion_boxes():
    rec, sink = make(post_motion_s=3.0)
    drive(rec, [False] * 20 + [True] * 10 + [False] * 40)
    (event,) = sink.closed_events
    tail = [s for s in event.stills if s.timestamp > T0 + 29 * PERIOD]
    assert tail[0].boxes, "a still just after motion keeps the last boxes"
    assert not tail[-1].boxes, "long after motion, a still has no boxes"


def test_event_ids_are_unique_and_sortable_by_start_time():
    ids = [new_event_id(T0 + i * 0.001) for i in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert event_id_time(ids[5]) == pytest.approx(T0 + 0.005, abs=0.0011)
    same_ms = {new_event_id(T0) for _ in range(1000)}
    assert len(same_ms) == 1000


def test_event_record_has_what_later_stages_need():
    rec, sink = make()
    drive(rec, [False] * 30 + [True] * 10 + [False] * 30)
    record = sink.closed_events[0].to_record()
    for key in ("schema", "id", "station_id", "deployment_id", "status", "start", "end", "trigger",
                "start_timestamp", "end_timestamp", "frames", "end_reason", "pre_trigger_s"):
        assert key in record
    assert record["status"] == "closed"
    frame = record["frames"][-1]
    assert set(frame) >= {"index", "file", "time", "timestamp", "boxes", "pre_trigger", "motion_score"}
