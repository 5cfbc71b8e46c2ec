"""``synthetic[:SEED]``: a simulated forest camera trap with a known script.

Frames come at the media clock's pace (or as fast as possible with
``realtime=False``); the same seed always gives the same frames and the same truth::

    with SyntheticCamera(seed=7, duration_s=120, realtime=False) as cam:
        while (frame := cam.read()) is not None:
            ...
        cam.write_truth("truth.json")
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import cv2

from station.camera.base import Camera, CameraError, Frame
from station.camera.pacing import MediaClock
from station.camera.synthetic.animals import AnimalSprite
from station.camera.synthetic.pictures import PictureSprite, find_pictures
from station.camera.synthetic.pir import ScenePirSignal
from station.camera.synthetic.render import Painted, StreamRenderer
from station.camera.synthetic.scene import Crossing, Schedule, ScheduleBuilder, build_schedule

LORES, MAIN = 0, 1
NOISE = {LORES: (1.2, 3.5), MAIN: (2.0, 6.0)}
"""Sensor noise sigma (grey levels) by day and under IR, per stream."""
LOOKAHEAD_S = 120.0
"""An endless scene writes its script this far ahead of the frame being rendered."""


def parse_uri(uri: str) -> int:
    """The seed in ``synthetic`` or ``synthetic:SEED``."""
    head, _, tail = uri.partition(":")
    if head != "synthetic":
        raise ValueError(f"camera uri {uri!r} is not synthetic[:SEED]")
    if not tail:
        return 0
    try:
        return int(tail)
    except ValueError:
        raise ValueError(f"camera uri {uri!r}: the seed must be an integer") from None


class SyntheticCamera(Camera):
    """A forest scene with animals crossing, wind, light changes, snow and IR nights.

    Each frame's ``meta["pir"]`` is a simulated PIR sensor's output (:mod:`.pir`).

    ``duration_s`` ends the scene (``read`` then returns None); without it the script is
    written on as time goes. ``pictures`` walks real pictures across instead of drawn
    animals (see :func:`~station.camera.synthetic.pictures.find_pictures`). ``clock``
    replaces the media clock (tests hand in one with a fake sleep); it then decides
    ``start_time`` and ``realtime``.
    """

    live = False

    def __init__(self, seed: int = 0, main_size: tuple[int, int] = (1280, 720),
                 lores_size: tuple[int, int] = (320, 180), fps: float = 10.0,
                 realtime: bool = True, start_time: datetime | float | None = None,
                 duration_s: float | None = None, pictures: str | Path | None = None,
                 clock: MediaClock | None = None):
        if fps <= 0:
            raise ValueError(f"synthetic:{seed}: fps must be positive, got {fps}")
        if duration_s is not None and duration_s <= 0:
            raise ValueError(f"synthetic:{seed}: duration_s must be positive, got {duration_s}")
        self.seed = int(seed)
        self.uri = f"synthetic:{self.seed}"
        self.fps = float(fps)
        self.main_size = (int(main_size[0]), int(main_size[1]))
        self.lores_size = (int(lores_size[0]), int(lores_size[1]))
        self.duration_s = duration_s
        self.pictures = Path(pictures) if pictures is not None else None
        self.clock = clock if clock is not None else MediaClock(start_time, realtime)
        self._restart_clock = clock is None and start_time is None
        """Scene time 0 is "now" at open() (after painting), unless a start was given."""
        self._realtime = realtime
        refs = find_pictures(self.pictures) if self.pictures is not None else None
        aspect = self.main_size[0] / self.main_size[1]
        self._builder: ScheduleBuilder | None = None
        if duration_s is not None:
            self._schedule = build_schedule(self.seed, duration_s, aspect=aspect, pictures=refs)
        else:
            self._builder = ScheduleBuilder(self.seed, aspect=aspect, pictures=refs)
            self._builder.extend_to(LOOKAHEAD_S)
            self._schedule = self._builder.schedule()
        self._index = 0
        self._last_t: float | None = None
        self._painted: Painted | None = None
        self._streams: dict[int, StreamRenderer] = {}
        self._sprites: dict[int, AnimalSprite | PictureSprite] = {}
        self._pir = ScenePirSignal()
        self._open = False

    # -- Camera -------------------------------------------------------------------------------
    def open(self) -> None:
        if self._painted is None:
            self._painted = Painted(self.seed, self.main_size)
        self._stream(LORES)
        if self._restart_clock:
            self.clock = MediaClock(None, self._realtime)
        self._index = 0
        self._last_t = None
        self._open = True

    def close(self) -> None:
        self._open = False
        self._sprites.clear()

    def read(self, want_main: bool = False) -> Frame | None:
        if not self._open:
            raise CameraError(f"{self.uri}: read() before open()")
        t = self._index / self.fps
        if self.duration_s is not None and t >= self.duration_s:
            return None
        frame = self._render(self._index, want_main)
        self.clock.wait_until(t)
        self._index += 1
        self._last_t = t
        return frame

    def frame_at(self, scene_s: float, want_main: bool = False) -> Frame:
        """The frame due at ``scene_s`` (rounded to a frame), without waiting or moving
        the read position: for tests and tools that jump to a crossing."""
        return self._render(int(round(scene_s * self.fps)), want_main)

    def _render(self, index: int, want_main: bool) -> Frame:
        t = index / self.fps
        schedule = self._script(t)
        self._tidy_sprites(schedule, t)
        img, night = self._stream(LORES).render(schedule, t, index, self._sprite)
        lores = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        main = None
        if want_main:
            m, _ = self._stream(MAIN).render(schedule, t, index, self._sprite)
            main = cv2.cvtColor(m, cv2.COLOR_GRAY2BGR) if m.ndim == 2 else m
        return Frame(index, self.clock.timestamp(t), lores, main,
                     meta={"scene_s": round(t, 4), "night": night, "pir": self._pir.active(schedule, t)})

    # -- truth --------------------------------------------------------------------------------
    @property
    def schedule(self) -> Schedule:
        """The whole script written so far (for a set duration: all of it)."""
        return self._schedule

    def truth(self, upto_s: float | None = None) -> Schedule:
        """Crossings and disturbances that have begun by ``upto_s`` scene seconds.

        By default: the whole scene when ``duration_s`` is set, else up to the last
        frame read.
        """
        if upto_s is None:
            if self.duration_s is not None:
                return self._schedule
            upto_s = self._last_t if self._last_t is not None else 0.0
        if self._builder is not None:
            self._script(upto_s)
        return self._schedule.until(upto_s)

    def truth_dict(self, upto_s: float | None = None) -> dict:
        data = self.truth(upto_s).to_dict(epoch_start=self.clock.timestamp(0.0))
        data.update({
            "uri": self.uri, "fps": self.fps, "main_size": list(self.main_size),
            "lores_size": list(self.lores_size),
            "pictures": str(self.pictures) if self.pictures is not None else None,
            "frames_read": self._index,
        })
        return data

    def write_truth(self, path: str | Path, upto_s: float | None = None) -> Path:
        """Write :meth:`truth` as JSON (times in scene seconds and as epoch ``*_ts``), atomically:
        a full card raises OSError and leaves no half-written file."""
        from station.files import atomic_write

        path = Path(path)
        atomic_write(path, json.dumps(self.truth_dict(upto_s), indent=1).encode())
        return path

    # -- internals ----------------------------------------------------------------------------
    def _script(self, t: float) -> Schedule:
        if self._builder is not None and self._builder.horizon_s < t + LOOKAHEAD_S / 2:
            self._builder.extend_to(t + LOOKAHEAD_S)
            self._schedule = self._builder.schedule()
        return self._schedule

    def _stream(self, which: int) -> StreamRenderer:
        if which not in self._streams:
            if self._painted is None:
                self._painted = Painted(self.seed, self.main_size)
            size = self.lores_size if which == LORES else self.main_size
            self._streams[which] = StreamRenderer(self.seed, size, self._painted, which, NOISE[which])
        return self._streams[which]

    def _sprite(self, crossing: Crossing) -> AnimalSprite | PictureSprite:
        sprite = self._sprites.get(crossing.index)
        if sprite is None:
            if crossing.picture is not None:
                sprite = PictureSprite(crossing)
            else:
                sprite = AnimalSprite(crossing, self.main_size[0] / self.main_size[1], self.main_size[1])
            self._sprites[crossing.index] = sprite
        return sprite

    def _tidy_sprites(self, schedule: Schedule, t: float) -> None:
        """Forget finished crossings; paint the next one a little before it walks in."""
        done = [i for i, s in self._sprites.items()
                if not (s.crossing.start_s - 6.0 < t < s.crossing.end_s + 2.0)]
        for i in done:
            del self._sprites[i]
        for c in schedule.crossings_at(t + 3.0):
            if c.index not in self._sprites:
                self._sprite(c).prepare()


def load_truth(path: str | Path) -> Schedule:
    """Read a truth file written by :meth:`SyntheticCamera.write_truth`."""
    return Schedule.from_dict(json.loads(Path(path).read_text()))
