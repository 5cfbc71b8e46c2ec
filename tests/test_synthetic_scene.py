"""The simulated forest camera: same seed, same scene; a fair script; real pictures."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from station.camera.base import Camera, CameraError
from station.camera.pacing import MediaClock
from station.camera.synthetic import (
    DISTURBANCE_KINDS,
    KINDS,
    SyntheticCamera,
    build_schedule,
    find_pictures,
    load_truth,
    parse_uri,
)
from station.camera.synthetic.bodies import plan_for
from station.camera.synthetic.scene import SPECS, ScheduleBuilder

SMALL = dict(main_size=(320, 180), lores_size=(160, 90), realtime=False)


def small_camera(seed=0, **kw) -> SyntheticCamera:
    return SyntheticCamera(seed=seed, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def long_schedule():
    return build_schedule(seed=11, duration_s=4 * 3600)


# -- the camera -------------------------------------------------------------------------------
def test_it_is_a_camera_named_by_its_seed():
    cam = small_camera(seed=42)
    assert isinstance(cam, Camera)
    assert cam.uri == "synthetic:42"
    assert cam.live is False
    assert parse_uri("synthetic") == 0
    assert parse_uri("synthetic:42") == 42
    with pytest.raises(ValueError, match="seed"):
        parse_uri("synthetic:leopard")


def test_frames_have_a_grey_lores_and_a_colour_main_only_when_asked():
    with SyntheticCamera(seed=1, realtime=False, duration_s=1.0) as cam:
        first = cam.read()
        second = cam.read(want_main=True)
    assert first.main is None
    assert first.lores.shape == (180, 320) and first.lores.dtype == np.uint8
    assert second.main.shape == (720, 1280, 3) and second.main.dtype == np.uint8
    assert second.lores.shape == (180, 320)
    assert (first.index, second.index) == (0, 1)


def test_reading_before_open_is_an_error_that_names_the_camera():
    with pytest.raises(CameraError, match="synthetic:3"):
        small_camera(seed=3).read()


def test_same_seed_gives_the_same_frames_and_truth():
    a, b = small_camera(seed=5, duration_s=300), small_camera(seed=5, duration_s=300)
    assert a.truth().to_dict() == b.truth().to_dict()
    moments = [0.0, 7.3] + [(c.start_s + c.end_s) / 2 for c in a.schedule.crossings[:3]]
    for t in moments:
        fa, fb = a.frame_at(t, want_main=True), b.frame_at(t, want_main=True)
        assert np.array_equal(fa.lores, fb.lores)
        assert np.array_equal(fa.main, fb.main)


def test_different_seeds_give_different_scenes():
    a, b = small_camera(seed=1, duration_s=300), small_camera(seed=2, duration_s=300)
    assert a.truth().to_dict()["crossings"] != b.truth().to_dict()["crossings"]
    assert not np.array_equal(a.frame_at(3.0).lores, b.frame_at(3.0).lores)


def test_lores_does_not_depend_on_whether_main_was_asked_for():
    a, b = small_camera(seed=4, duration_s=120), small_camera(seed=4, duration_s=120)
    crossing = a.schedule.crossings[0]
    a.open()
    b.open()
    while (fa := a.read()) is not None and fa.meta["scene_s"] < crossing.start_s + 1.0:
        fb = b.read(want_main=fa.index % 3 == 0 or fa.meta["scene_s"] > crossing.start_s)
        assert np.array_equal(fa.lores, fb.lores)


def test_a_scene_of_set_duration_ends():
    with small_camera(duration_s=1.0, fps=10.0) as cam:
        frames = []
        while (f := cam.read()) is not None:
            frames.append(f)
        assert cam.read() is None
    assert [f.index for f in frames] == list(range(10))


def test_timestamps_follow_the_media_clock_and_realtime_paces_reads():
    slept: list[float] = []
    now = [100.0]
    clock = MediaClock(start_time=1_000_000.0, realtime=True, sleep=slept.append,
                       monotonic=lambda: now[0])
    with small_camera(fps=5.0, duration_s=1.0, clock=clock) as cam:
        frames = [cam.read(), cam.read(), cam.read()]
    assert [f.timestamp for f in frames] == [1_000_000.0, 1_000_000.2, 1_000_000.4]
    assert slept == pytest.approx([0.2, 0.4])  # the fake clock never moved on


def test_realtime_off_never_sleeps():
    slept: list[float] = []
    clock = MediaClock(start_time=0.0, realtime=False, sleep=slept.append)
    with small_camera(duration_s=0.5, clock=clock) as cam:
        while cam.read() is not None:
            pass
    assert slept == []


def middle(c) -> float:
    """When the crossing's box is furthest into the frame."""
    x = c.turn_x if c.path == "in_out" else 0.5
    return c.start_s + (x + c.width / 2) / c.speed


def test_every_crossing_puts_a_clearly_visible_animal_in_its_box():
    cam = small_camera(seed=8, duration_s=900)
    seen = set()
    for c in cam.schedule.crossings:
        if c.kind in seen:
            continue
        seen.add(c.kind)
        t_mid = middle(c)
        with_animal = cam.frame_at(t_mid).lores.astype(int)
        empty = cam.frame_at(c.start_s - 3.0).lores.astype(int)
        changed = np.abs(with_animal - empty) > 25
        assert changed.mean() >= 0.01, (c.kind, changed.mean())
        x, y, w, h = c.box(cam.frame_at(t_mid).meta["scene_s"])
        H, W = changed.shape
        inside = changed[int(y * H):int((y + h) * H) + 1, int(x * W):int((x + w) * W) + 1].sum()
        assert inside >= 0.8 * changed.sum(), c.kind
    assert seen == set(KINDS)


def test_night_frames_are_grey_and_day_frames_are_colour():
    cam = small_camera(seed=2, duration_s=1200)
    night = [d for d in cam.schedule.disturbances if d.detail == "to_ir"][0]
    day = cam.frame_at(night.start_s - 1.0, want_main=True)
    ir = cam.frame_at(night.start_s + 1.0, want_main=True)
    assert not day.meta["night"] and ir.meta["night"]
    b, g, r = cv2.split(ir.main)
    assert np.array_equal(b, g) and np.array_equal(g, r)
    assert not np.array_equal(*cv2.split(day.main)[:2])


def test_truth_json_round_trips_with_epoch_times(tmp_path):
    cam = small_camera(seed=9, duration_s=600, start_time=1_700_000_000.0)
    path = cam.write_truth(tmp_path / "truth.json")
    data = json.loads(path.read_text())
    assert data["uri"] == "synthetic:9"
    first = data["crossings"][0]
    assert first["start_ts"] == pytest.approx(1_700_000_000.0 + first["start_s"])
    assert load_truth(path).to_dict() == cam.truth().to_dict()


def test_an_endless_scene_writes_its_script_as_it_goes():
    cam = small_camera(seed=6)
    cam.open()
    assert cam.truth().crossings == []
    first = cam.schedule.crossings[0]
    while cam.read().meta["scene_s"] < first.end_s:
        pass
    assert cam.truth().crossings == [first]
    far = cam.frame_at(3600.0)
    assert far.index == 36000
    assert cam.schedule.crossings[-1].end_s > 3600.0
    assert cam.schedule.crossings[:5] == build_schedule(6, 3600.0).crossings[:5]


# -- the script ---------------------------------------------------------------------------
def test_crossings_are_separated_by_quiet_stretches(long_schedule):
    cs = long_schedule.crossings
    assert len(cs) > 200
    assert cs[0].start_s >= 12.0  # time for a background model (4 s time constant) to settle
    for a, b in zip(cs, cs[1:]):
        assert b.start_s - a.end_s >= 20.0
        assert a.end_s > a.start_s


def test_disturbances_keep_clear_of_crossings(long_schedule):
    for d in long_schedule.disturbances:
        for c in long_schedule.crossings:
            assert d.end_s <= c.start_s - 4.0 or d.start_s >= c.end_s + 4.0, (d, c)


def test_a_long_script_has_every_kind_and_every_weather(long_schedule):
    kinds = {c.kind for c in long_schedule.crossings}
    assert kinds == set(KINDS)
    assert {d.kind for d in long_schedule.disturbances} == set(DISTURBANCE_KINDS)
    assert any(c.night for c in long_schedule.crossings)
    assert any(not c.night for c in long_schedule.crossings)
    assert any(c.path == "in_out" for c in long_schedule.crossings)
    sizes = [c.height for c in long_schedule.crossings]
    assert min(sizes) < 0.2 and max(sizes) > 0.6


def test_the_first_ten_minutes_show_all_the_weather():
    s = build_schedule(seed=3, duration_s=600)
    assert {d.kind for d in s.disturbances} >= {"light_jump", "snow", "night_switch", "gust"}


def test_light_jumps_happen_by_day_and_nights_begin_and_end_with_a_switch(long_schedule):
    s = long_schedule
    for d in s.disturbances:
        if d.kind == "light_jump":
            assert not s.is_night(d.start_s) and not s.is_night(d.end_s)
            assert 0.1 <= d.ramp_in_s <= 0.3
    for c in s.crossings:
        assert c.night == s.is_night(c.start_s) == s.is_night(c.end_s)
    switches = [d.detail for d in s.disturbances if d.kind == "night_switch"]
    assert all(a != b for a, b in zip(switches, switches[1:]))


def test_quiet_periods_are_the_gaps_between_crossings(long_schedule):
    quiet = long_schedule.quiet_periods(margin_s=2.0)
    for a, b in quiet:
        assert not long_schedule.crossings_at((a + b) / 2)
    assert sum(b - a for a, b in quiet) > 0.6 * long_schedule.duration_s


def test_the_script_is_prefix_stable():
    short, long = build_schedule(7, 1800.0), build_schedule(7, 3600.0)
    assert long.crossings[:len(short.crossings)] == short.crossings
    assert long.disturbances[:len(short.disturbances)] == short.disturbances
    b = ScheduleBuilder(7)
    b.extend_to(900.0)
    b.extend_to(3600.0)
    assert b.schedule(3600.0).crossings == long.crossings


def test_crossing_boxes_enter_from_one_side_and_leave_at_the_other(long_schedule):
    for c in long_schedule.crossings[:60]:
        assert c.box(c.start_s - 0.01) is None
        mid = c.box((c.start_s + c.end_s) / 2)
        assert mid is not None and mid[2] * mid[3] >= 0.01
        x_start, _, _ = c.state(c.start_s)
        x_end, _, _ = c.state(c.end_s)
        if c.path == "through":
            assert (x_start < 0.5) == (c.direction > 0) and (x_end > 0.5) == (c.direction > 0)
        else:
            assert (x_start < 0.5) == (x_end < 0.5)


def test_drawn_bodies_fill_the_box_the_script_assumes():
    for kind in KINDS:
        assert plan_for(kind).aspect == pytest.approx(SPECS[kind].aspect, rel=0.01)


# -- real pictures ------------------------------------------------------------------------
def _write_pictures(root, layout):
    rng = np.random.default_rng(0)
    for rel in layout:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.zeros((120, 160, 3), np.uint8)
        img[:] = rng.integers(40, 220, 3)
        cv2.circle(img, (80, 60), 40, tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
        cv2.imwrite(str(path), img)


def test_pictures_mode_walks_real_pictures_tagged_by_folder(tmp_path):
    _write_pictures(tmp_path, ["leopard/a.jpg", "leopard/b.png", "tiger/c.jpg", "empty/blank.jpg"])
    refs = find_pictures(tmp_path)
    assert sorted(r.tag for r in refs) == ["leopard", "leopard", "tiger"]
    cam = small_camera(seed=3, duration_s=900, pictures=tmp_path)
    cs = cam.schedule.crossings
    assert {c.kind for c in cs} == {"leopard", "tiger"}
    assert all(c.picture and c.picture.split("/")[-2] == c.kind for c in cs)
    assert {c.picture for c in cs} == {r.path for r in refs}
    c = cs[0]
    with_picture = cam.frame_at(middle(c)).lores.astype(int)
    changed = np.abs(with_picture - cam.frame_at(c.start_s - 3).lores.astype(int)) > 25
    assert changed.mean() > 0.02


def test_a_flat_folder_of_pictures_is_tagged_by_its_name(tmp_path):
    folder = tmp_path / "prey_deer"
    _write_pictures(folder, ["one.jpg", "two.jpg"])
    assert {r.tag for r in find_pictures(folder)} == {"prey_deer"}
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no images"):
        find_pictures(tmp_path / "nothing")
