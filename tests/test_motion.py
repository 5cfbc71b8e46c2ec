"""Motion detection: what a ranger would expect the trap to notice, and what not.

Every frame is drawn here with numpy and OpenCV: a textured forest floor, a textured
animal walking across, leaves swaying, snow, clouds. Tests assert behaviour, not speed.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from station.config.motion import MotionSection
from station.motion import FrameDiffBaseline, MotionDetector, MotionResult
from station.motion.background import rate_for
from station.motion.detector import merge_boxes
from station.motion.masks import rasterise, watched_area

FPS = 10.0
SIZE = (320, 240)


def texture(size: tuple[int, int], seed: int, lo: int = 30, hi: int = 220,
            grain: float = 3.0) -> np.ndarray:
    """A smooth random texture (forest floor, fur, leaves) as float32 in [lo, hi]."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    for octave, weight in ((grain, 1.0), (grain * 4, 1.5), (grain * 12, 2.0)):
        noise = rng.normal(0, 1, (h, w)).astype(np.float32)
        img += weight * cv2.GaussianBlur(noise, (0, 0), octave)
    img -= img.min()
    img *= (hi - lo) / max(float(img.max()), 1e-6)
    return img + lo


class Scene:
    """A still, textured view with sensor noise; things are painted on per frame."""

    def __init__(self, size=SIZE, seed=1, noise=2.0):
        self.size = size
        self.floor = texture(size, seed)
        self.rng = np.random.default_rng(seed + 100)
        self.noise = noise
        self.fur = texture((80, 80), seed + 7, lo=10, hi=90, grain=1.5)

    def base(self) -> np.ndarray:
        return self.floor.copy()

    def animal(self, img: np.ndarray, x: int, y: int, w: int = 40, h: int = 30) -> None:
        """Paint a dark, furry animal with its top-left corner at (x, y)."""
        H, W = img.shape
        x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
        if x1 > x0 and y1 > y0:
            img[y0:y1, x0:x1] = self.fur[y0 - y:y1 - y, x0 - x:x1 - x]

    def finish(self, img: np.ndarray) -> np.ndarray:
        if self.noise:
            img = img + self.rng.normal(0, self.noise, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def still(self) -> np.ndarray:
        return self.finish(self.base())


def make_detector(size=SIZE, scale=None, **cfg) -> MotionDetector:
    return MotionDetector(MotionSection(**cfg), size, FPS, scale=scale)


def run(det, frames) -> list[MotionResult]:
    return [det.detect(f) for f in frames]


def settle(det, scene: Scene, seconds: float = 5.0) -> None:
    """Let the detector watch the empty scene until it is past warm-up."""
    for _ in range(int(seconds * FPS)):
        assert not det.detect(scene.still()).motion


def box_centre_px(result: MotionResult, size=SIZE) -> list[tuple[float, float]]:
    w, h = size
    return [((b.x + b.w / 2) * w, (b.y + b.h / 2) * h) for b in result.boxes]


# -- the animal ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [None, 1], ids=["auto-reduced", "full-lores"])
def test_a_deer_walking_across_is_boxed_where_it_is(scale):
    scene, det = Scene(), make_detector(scale=scale)
    settle(det, scene)
    hits = 0
    for i in range(60):
        x, y = 10 + 4 * i, 110
        img = scene.base()
        scene.animal(img, x, y)
        result = det.detect(scene.finish(img))
        if x < 0 or x + 40 > SIZE[0]:
            continue
        assert result.motion, f"missed the animal at x={x}"
        assert not result.light_jump
        hits += 1
        centres = box_centre_px(result)
        nearest = min(np.hypot(cx - (x + 20), cy - (y + 15)) for cx, cy in centres)
        assert nearest < 12, f"box centres {centres} far from the animal at ({x + 20}, {y + 15})"
        big = max(result.boxes, key=lambda b: b.area)
        assert 0.5 < big.area / (40 * 30 / (SIZE[0] * SIZE[1])) < 2.0
        assert 0.5 * 40 * 30 / (SIZE[0] * SIZE[1]) < result.score < 0.05
    assert hits > 50


def test_the_first_frame_only_seeds_the_background():
    scene = Scene()
    img = scene.base()
    scene.animal(img, 100, 100)
    det = make_detector()
    first = det.detect(scene.finish(img))
    assert first == MotionResult.still()
    assert det.warming_up


def test_a_still_scene_with_sensor_noise_stays_quiet():
    scene, det = Scene(noise=3.0), make_detector()
    results = run(det, (scene.still() for _ in range(300)))
    assert not any(r.motion for r in results)
    assert not det.warming_up
    assert max(r.changed_fraction for r in results[50:]) < 0.01


def test_a_leopard_close_to_the_lens_is_motion_not_a_light_jump():
    scene, det = Scene(), make_detector()
    settle(det, scene)
    big_fur = texture((200, 200), 42, lo=5, hi=70, grain=4)
    for i in range(10):
        img = scene.base()
        x = 40 + 5 * i
        img[20:220, x:x + 200] = big_fur  # more than half of the frame
        result = det.detect(scene.finish(img))
        assert result.motion and not result.light_jump
        assert result.changed_fraction > 0.35
        assert result.score > 0.3


def test_a_large_lores_stream_works_the_same():
    size = (640, 480)
    scene, det = Scene(size=size), make_detector(size=size)
    assert det.scale > 1
    settle(det, scene)
    img = scene.base()
    scene.animal(img, 300, 200, w=80, h=60)
    result = det.detect(scene.finish(img))
    assert result.motion
    (cx, cy), = box_centre_px(result, size)
    assert abs(cx - 340) < 10 and abs(cy - 230) < 10


# -- light ---------------------------------------------------------------------------------


def test_dusk_falling_slowly_is_not_motion():
    scene, det = Scene(), make_detector()
    settle(det, scene)
    for i in range(900):  # 90 s: the light drops to 40 % and the sky stays noisy
        gain = 1.0 - 0.6 * i / 900
        result = det.detect(scene.finish(scene.base() * gain))
        assert not result.motion, f"frame {i} at gain {gain:.2f} fired"
        assert not result.light_jump


def test_an_auto_exposure_step_is_compensated_quietly():
    scene, det = Scene(), make_detector()
    settle(det, scene)
    for gain in (1.08, 1.08, 1.0, 0.93, 0.93):  # small steps, as auto-exposure makes
        result = det.detect(scene.finish(scene.base() * gain))
        assert not result.motion and not result.light_jump


@pytest.mark.parametrize("change", ["brighter", "darker", "offset"])
def test_a_sudden_cloud_is_a_light_jump_and_quiet_right_after(change):
    scene, det = Scene(), make_detector()
    settle(det, scene)

    def lit(img):
        return {"brighter": img * 1.5, "darker": img * 0.5, "offset": img + 60}[change]

    jump = det.detect(scene.finish(lit(scene.base())))
    assert jump.light_jump and not jump.motion
    assert jump.changed_fraction >= 0 and jump.boxes == ()
    after = run(det, (scene.finish(lit(scene.base())) for _ in range(30)))
    assert not any(r.motion or r.light_jump for r in after[2:])
    # and an animal in the new light is still seen
    img = lit(scene.base())
    scene.animal(img, 150, 100)
    assert det.detect(scene.finish(img)).motion


def test_switching_to_infrared_at_night_is_a_light_jump():
    day = Scene(seed=1)
    night = Scene(seed=5, noise=4.0)  # IR shows other textures, not just other brightness
    det = make_detector()
    settle(det, day)
    result = det.detect(night.still())
    assert result.light_jump and not result.motion
    after = run(det, (night.still() for _ in range(30)))
    assert not any(r.motion for r in after[1:])


def test_falling_snow_veiling_the_woods_is_compensated_not_motion():
    # Haze lifts the shadows and dims the highlights: x = 0.85 * scene + 28, over 2 s.
    scene, det = Scene(), make_detector()
    settle(det, scene)
    for i in range(60):
        k = min(1.0, i / 20)
        result = det.detect(scene.finish(scene.base() * (1 - 0.15 * k) + 28 * k))
        assert not result.motion, f"frame {i}"


def test_a_bright_spell_that_clips_the_highlights_leaves_no_ghost_when_it_ends():
    scene, det = Scene(), make_detector()
    settle(det, scene)
    for _ in range(80):  # 8 s of sun: everything above 170 clips at 255
        assert not det.detect(scene.finish(scene.base() * 1.5)).motion
    results = run(det, (scene.still() for _ in range(50)))
    assert not any(r.motion for r in results)


def test_the_infrared_flash_lighting_the_middle_is_a_light_jump_not_motion():
    # IR on: the flash lights the centre and leaves the corners dark.
    scene, det = Scene(), make_detector()
    settle(det, scene)
    h, w = scene.floor.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    flash = np.clip(1.6 - 1.4 * (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / h) ** 2), 0.2, 1.6)
    switched = det.detect(scene.finish(scene.base() * flash))
    assert switched.light_jump and not switched.motion
    after = run(det, (scene.finish(scene.base() * flash) for _ in range(30)))
    assert not any(r.motion for r in after)


def test_a_cloud_shadow_over_part_of_the_view_is_not_motion():
    # A quarter of the frame drops into shadow at once: too little for a light jump,
    # but the forest floor under it keeps its texture, so it is no animal either.
    scene, det = Scene(), make_detector()
    settle(det, scene)
    shade = np.ones(scene.floor.shape, np.float32)
    shade[:, 240:] = 0.55
    results = run(det, (scene.finish(scene.base() * shade) for _ in range(30)))
    assert not any(r.light_jump for r in results)
    assert not any(r.motion for r in results)
    assert results[0].changed_fraction > 0.2


# -- what must not count -------------------------------------------------------------------


class Leaves:
    """Branches swaying in the wind: sunlit leaves and dark gaps shifted back and forth."""

    def __init__(self, seed=3, patches=((190, 10, 120, 100), (10, 150, 90, 80)), sway=5.0):
        self.patches = patches
        self.sway = sway
        pattern = texture((220, 180), seed, lo=0, hi=1, grain=2.0)
        self.leaf = cv2.GaussianBlur(np.where(pattern > 0.5, 200.0, 40.0).astype(np.float32),
                                     (0, 0), 0.8)

    def paint(self, img: np.ndarray, t: float) -> None:
        for n, (x, y, w, h) in enumerate(self.patches):
            dx = self.sway * np.sin(2 * np.pi * t / (1.3 + 0.4 * n))
            dy = self.sway / 2 * np.sin(2 * np.pi * t / (2.1 + 0.3 * n) + n)
            m = np.float32([[1, 0, 20 + dx], [0, 1, 20 + dy]])
            img[y:y + h, x:x + w] = cv2.warpAffine(self.leaf, m, (w, h),
                                                   flags=cv2.WARP_INVERSE_MAP)


def windy_minute_and_a_half(scene: Scene, leaves: Leaves) -> list[np.ndarray]:
    frames = []
    for i in range(900):
        img = scene.base()
        leaves.paint(img, i / FPS)
        frames.append(scene.finish(img))
    return frames


def test_swaying_leaves_stop_firing_after_warm_up_but_the_baseline_keeps_firing():
    scene, leaves = Scene(), Leaves()
    frames = windy_minute_and_a_half(scene, leaves)
    det, base = make_detector(), FrameDiffBaseline(SIZE)
    ours, theirs = run(det, frames), run(base, frames)
    late = slice(600, 900)  # the last 30 s
    assert sum(r.motion for r in ours[late]) == 0
    assert sum(r.motion for r in theirs[late]) > 0.9 * 300
    # the leaves did not make the detector blind elsewhere
    img = scene.base()
    leaves.paint(img, 90.0)
    scene.animal(img, 60, 40)
    assert det.detect(scene.finish(img)).motion


def test_leaves_are_learnt_at_full_detail_too_though_they_form_regions():
    # Without the reduction the leaf edges form regions, which learn slowly, but
    # they flicker, so they are exempt from the slow-down.
    scene, leaves = Scene(), Leaves()
    frames = windy_minute_and_a_half(scene, leaves)
    det = make_detector(scale=1)
    results = run(det, frames)
    assert sum(r.motion for r in results[:100]) > 50  # they did fire at first
    assert sum(r.motion for r in results[600:]) == 0


def test_it_is_the_per_pixel_noise_allowance_that_quiets_the_leaves():
    scene, leaves = Scene(), Leaves()
    frames = windy_minute_and_a_half(scene, leaves)
    plain = run(make_detector(noise_k=0), frames)  # threshold alone, no spread
    assert sum(r.motion for r in plain[600:]) > 0.5 * 300


def test_snowflakes_are_too_small_to_count():
    scene, det = Scene(), make_detector()
    settle(det, scene)
    rng = np.random.default_rng(9)
    flakes = rng.uniform(0, 1, (60, 2)) * SIZE
    for i in range(100):
        img = scene.base()
        flakes[:, 1] = (flakes[:, 1] + 6) % SIZE[1]
        flakes[:, 0] = (flakes[:, 0] + rng.normal(0, 1, 60)) % SIZE[0]
        for fx, fy in flakes.astype(int):
            cv2.circle(img, (fx, fy), 1, 250.0, -1)
        result = det.detect(scene.finish(img))
        assert not result.motion, f"frame {i}: {result}"


def test_small_vermin_below_min_area_is_ignored_but_counted_as_changed():
    scene, det = Scene(), make_detector(min_area=0.01)
    settle(det, scene)
    for i in range(20):
        img = scene.base()
        scene.animal(img, 50 + 3 * i, 100, w=12, h=10)  # 0.16 % of the frame
        result = det.detect(scene.finish(img))
        assert not result.motion
        assert result.changed_fraction > 0


def test_motion_inside_an_exclusion_mask_is_ignored():
    road = [(0.0, 0.3), (1.0, 0.3), (1.0, 0.7), (0.0, 0.7)]
    scene = Scene()
    masked, open_view = make_detector(masks=[road]), make_detector()
    settle(masked, scene)
    settle(open_view, scene)
    for i in range(30):
        img = scene.base()
        scene.animal(img, 20 + 6 * i, 100)  # y 100..130 is inside 72..168
        frame = scene.finish(img)
        assert not masked.detect(frame).motion
        assert open_view.detect(frame).motion
    img = scene.base()
    scene.animal(img, 150, 10)  # above the road
    result = masked.detect(scene.finish(img))
    assert result.motion and result.boxes[0].y < 0.3


# -- the background learns ----------------------------------------------------------------


def test_an_animal_that_lies_down_is_seen_for_a_while_then_absorbed():
    scene, det = Scene(), make_detector()
    settle(det, scene)
    frames_moving = 0
    for i in range(20):
        img = scene.base()
        scene.animal(img, 40 + 4 * i, 100)
        frames_moving += det.detect(scene.finish(img)).motion
    assert frames_moving == 20
    still = []
    for _ in range(int(120 * FPS)):  # it rests for two minutes at x=116
        img = scene.base()
        scene.animal(img, 116, 100)
        still.append(det.detect(scene.finish(img)).motion)
    seconds_seen = sum(still) / FPS
    assert seconds_seen >= 3, "a resting animal must not vanish at once"
    assert not any(still[-int(30 * FPS):]), "it must be absorbed within 90 s"
    assert still[:int(3 * FPS)] == [True] * int(3 * FPS)


def test_a_ghost_left_by_an_animal_at_start_up_fades():
    scene, det = Scene(), make_detector()
    img = scene.base()
    scene.animal(img, 100, 100)
    det.detect(scene.finish(img))  # seeded with the animal in view; it then leaves
    results = run(det, (scene.still() for _ in range(int(90 * FPS))))
    assert not any(r.motion for r in results[-int(20 * FPS):])


def test_reset_after_a_reconnect_reseeds_on_the_next_frame():
    det = make_detector()
    settle(det, Scene(seed=1))
    det.reset()
    other = Scene(seed=2)  # the camera came back pointing elsewhere
    assert det.detect(other.still()) == MotionResult.still()
    assert not any(r.motion for r in run(det, (other.still() for _ in range(20))))


# -- the simulated forest ------------------------------------------------------------------


def test_in_the_simulated_forest_every_crossing_triggers_and_quiet_stretches_do_not():
    from station.camera.synthetic import SyntheticCamera

    lores = (160, 90)
    cam = SyntheticCamera(seed=2, lores_size=lores, fps=FPS, realtime=False,
                          duration_s=300, start_time=0)
    truth = cam.truth()
    quiet = truth.quiet_periods(margin_s=2.0)
    det = MotionDetector(MotionSection(), lores, FPS)
    hits: set[int] = set()
    false_frames = 0
    with cam:
        while (frame := cam.read()) is not None:
            t = frame.meta["scene_s"]
            result = det.detect(frame.lores)
            if not result.motion:
                continue
            for c in truth.crossings_at(t):
                tb = c.box(t)
                if tb and any(b.x < tb[0] + tb[2] and tb[0] < b.x + b.w
                              and b.y < tb[1] + tb[3] and tb[1] < b.y + b.h
                              for b in result.boxes):
                    hits.add(c.index)
            false_frames += any(a <= t < b for a, b in quiet)
    assert len(truth.crossings) >= 5 and len(truth.disturbances) >= 5
    assert hits == {c.index for c in truth.crossings}
    assert false_frames == 0


# -- input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, words", [
    (np.zeros((240, 320), np.float32), "uint8"),
    (np.zeros((240, 320, 3), np.uint8), "2-D"),
    (np.zeros((120, 160), np.uint8), "320x240"),
    (np.zeros((320, 240), np.uint8), "shape"),
    ([[0] * 320] * 240, "numpy array"),
])
@pytest.mark.parametrize("kind", ["station", "baseline"])
def test_a_wrong_frame_is_refused_with_the_reason(bad, words, kind):
    det = make_detector() if kind == "station" else FrameDiffBaseline(SIZE)
    det.detect(np.zeros((240, 320), np.uint8))
    with pytest.raises(ValueError, match=words):
        det.detect(bad)


def test_a_non_contiguous_view_is_accepted():
    det, scene = make_detector(), Scene()
    wide = np.zeros((240, 400), np.uint8)
    wide[:, :320] = scene.still()
    det.detect(wide[:, :320])
    assert not det.detect(wide[:, :320]).motion


# -- the baseline --------------------------------------------------------------------------


def test_the_baseline_fires_on_a_moving_animal_with_a_whole_frame_box():
    scene, base = Scene(noise=1.0), FrameDiffBaseline(SIZE)
    assert base.detect(scene.still()) == MotionResult.still()
    assert not base.detect(scene.still()).motion  # noise alone: mse ~ 2 * 1.0**2
    img = scene.base()
    scene.animal(img, 100, 100, w=80, h=60)
    result = base.detect(scene.finish(img))
    assert result.motion and result.score == 1.0
    assert [b.as_list() for b in result.boxes] == [[0.0, 0.0, 1.0, 1.0]]
    assert base.last_mse > 7


def test_the_baseline_computes_the_examples_mean_squared_error_without_overflow():
    base = FrameDiffBaseline((4, 1))
    base.detect(np.array([[0, 0, 255, 10]], np.uint8))
    base.detect(np.array([[255, 0, 0, 12]], np.uint8))
    assert base.last_mse == pytest.approx((255**2 + 255**2 + 4) / 4)


def test_the_baseline_keeps_its_own_copy_of_the_previous_frame():
    base, buf = FrameDiffBaseline((8, 8)), np.zeros((8, 8), np.uint8)
    base.detect(buf)
    buf[:] = 200  # a camera reusing its buffer
    assert base.detect(buf).motion


# -- pieces --------------------------------------------------------------------------------


def test_a_mask_polygon_covers_exactly_its_fraction_of_the_frame():
    left_half = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
    img = rasterise([left_half], (320, 240))
    assert img[:, :160].min() == 255 and img[:, 160:].max() == 0
    watched = watched_area([left_half], (322, 240), scale=2)  # the edge halves pixel 80
    assert watched.shape == (120, 161)
    assert watched[:, :80].max() == 0 and watched[:, 81:].min() == 255
    odd = watched_area([left_half], (321, 241), scale=2)  # odd edges are dropped
    assert odd.shape == (120, 160) and odd[:, :80].max() == 0 and odd[:, 80:].min() == 255
    assert watched_area([], (320, 240)) is None
    triangle = rasterise([[(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]], (100, 100))
    assert np.count_nonzero(triangle) == pytest.approx(5000, rel=0.02)


def test_the_learning_rate_follows_the_time_constant():
    rate = rate_for(4.0, 10.0)
    assert (1 - rate) ** 40 == pytest.approx(np.exp(-1), rel=1e-9)


def test_the_light_estimate_finds_gain_and_offset_and_ignores_a_big_animal():
    from station.motion.background import estimate_light

    rng = np.random.default_rng(4)
    background = rng.uniform(20, 220, (12, 16)).astype(np.float32)
    valid = np.ones_like(background, bool)
    gain, offset = estimate_light(background * 0.8 + 30, background, valid)
    assert gain == pytest.approx(0.8, abs=0.01) and offset == pytest.approx(30, abs=1)
    frame = background.copy()
    frame[:, :9] = rng.uniform(10, 60, (12, 9))  # an animal over 56 % of the blocks
    gain, offset = estimate_light(frame, background, valid)
    assert gain == pytest.approx(1.0, abs=0.01) and abs(offset) < 1


def test_texture_tells_light_from_an_animal():
    from station.motion.background import texture_kept

    floor = texture((160, 120), 3)
    changed = np.full(floor.shape, 255, np.uint8)
    valid = np.ones((12, 16), bool)
    shaded = floor * np.linspace(0.4, 1.2, 160, dtype=np.float32)[None, :]
    assert texture_kept(shaded, floor, changed, (16, 12), valid) > 0.9
    animal = texture((160, 120), 99, lo=10, hi=90)
    assert texture_kept(animal, floor, changed, (16, 12), valid) < 0.4  # smooth fur: chance


def test_touching_boxes_merge_and_distant_ones_do_not():
    assert merge_boxes([(0, 0, 10, 10), (10, 5, 20, 20), (50, 50, 60, 60)]) == [
        (0, 0, 20, 20), (50, 50, 60, 60)]


def test_the_work_resolution_is_reduced_only_as_far_as_the_blur_allows():
    from station.motion.detector import auto_scale

    assert auto_scale((320, 240), blur=5, min_area=0.003) == 2
    assert auto_scale((640, 480), blur=5, min_area=0.003) == 4
    assert auto_scale((640, 480), blur=1, min_area=0.003) == 1  # blur off: full detail
    assert auto_scale((640, 480), blur=5, min_area=0.0002) == 1  # tiny regions: full detail
    assert make_detector(size=(160, 90)).work_size == (160, 90)


def test_the_speed_bench_reports_its_figures():
    from station.bench.motion_speed import measure_throughput

    for name in ("station", "baseline"):
        r = measure_throughput((160, 120), frames=30, detector=name)
        assert r["detector"] == name and r["frames"] == 30
        assert r["frames_per_s"] > 0 and r["cpu_ms_per_frame"] >= 0
    with pytest.raises(ValueError, match="detector"):
        measure_throughput((160, 120), frames=5, detector="mog2")
