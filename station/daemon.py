"""The station daemon: the one place that builds the object graph and runs the capture loop.

    camera ─► motion detector ─► event recorder ─► event writer thread ─► event store
                                                        └─► disk guard (prune oldest)

The capture loop never waits for the disk: the writer thread takes stills and records
through a bounded hand-off. A camera that fails is closed, retried with exponential
backoff and reported; it never stops the daemon. ``stop()`` (SIGTERM/SIGINT) closes the
open event, writes everything queued and returns.

systemd (``station.sdnotify``): READY=1 once the loop runs (the first frame, or the first
camera failure it is retrying); WATCHDOG=1 only from this loop's progress: a frame, a
camera failure handled with its backoff wait (a camera that is unplugged is retried by
the daemon itself: restarting the service would not plug it in), or a step of scheduled
sleep. A camera call that never returns stops the pings and systemd restarts the service.
Outside the schedule's active hours (live cameras only) the camera is closed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from station import sdnotify
from station.camera.base import Camera, CameraError
from station.config import StationConfig
from station.events.recorder import EventRecorder

if TYPE_CHECKING:
    from station.classifier.worker import ClassificationWorker
    from station.feed.service import FeedService
    from station.power import PowerSampler
from station.events.recovery import recover
from station.events.reserve import RESERVE_NAME, RecordReserve
from station.events.retention import DiskGuard
from station.events.store import EventStore
from station.events.writer import EventWriter
from station.feed.control import CameraFacts, DiskFacts, IrFacts, StationFacts
from station.log import get_logger
from station.motion.types import MotionResult
from station.power.low_battery import LowBatterySwitch
from station.config.schedule import ScheduleSection
from station.schedule import ScheduleClock, format_change

log = get_logger("daemon")

STATS_INTERVAL_S = 60.0
SNAPSHOT_WARMUP_S = 1.0
"""A snapshot while asleep reads this long before keeping a frame (auto-exposure settles)."""


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    frames: int = 0
    motion_frames: int = 0
    light_jumps: int = 0
    camera_failures: int = 0
    camera_state: str = "starting"
    last_frame_monotonic: float | None = None
    schedule_state: str = "active"
    """"active", or "sleeping until HH:MM" outside the schedule's active hours; " (low
    battery: dusk-dawn)" follows while the low-battery schedule applies."""


@dataclass
class _RunState:
    """What one run of the capture loop keeps between frames."""

    duration_s: float | None
    backoff: float
    wall_start: float = field(default_factory=time.monotonic)
    first_ts: float | None = None
    last_ts: float = float("-inf")
    next_stats: float = field(default_factory=lambda: time.monotonic() + STATS_INTERVAL_S)


class Detector(Protocol):
    """What the daemon needs of a motion detector (MotionDetector or the baseline)."""

    def detect(self, gray) -> MotionResult: ...

    def reset(self) -> None: ...


DetectorFactory = Callable[[tuple[int, int], float], Detector]


def default_detector_factory(cfg: StationConfig) -> DetectorFactory:
    from station.motion.detector import MotionDetector

    return lambda size, fps: MotionDetector(cfg.motion, size, fps)


class StationDaemon:
    def __init__(self, cfg: StationConfig, camera: Camera, detector_factory: DetectorFactory,
                 store: EventStore, writer: EventWriter, recorder: EventRecorder,
                 classifier: "ClassificationWorker | None" = None):
        self.cfg = cfg
        self.camera = camera
        self.detector_factory = detector_factory
        self.store = store
        self.writer = writer
        self.recorder = recorder
        self.classifier = classifier
        self.feed: "FeedService | None" = None
        self.power: "PowerSampler | None" = None
        """Reads the battery monitor and the Pi's flags (set by build(); None: nothing to read)."""
        self.stats = Stats()
        self._stop = threading.Event()
        self._detector: Detector | None = None
        self._detector_shape: tuple[int, int] | None = None
        self.failure: str | None = None
        """Why the run ended early, for a source that cannot be retried (a replay)."""
        self.reloader: Callable[[], StationConfig] | None = None
        """Re-reads the config file for ``request_reload`` (set by the CLI)."""
        self.finish_on_stop = False
        """On stop(), also classify and deliver what is queued (the demo), not only on a
        source running out; a field station stops fast and finishes after its restart."""
        # deques, not a lock: SIGHUP's handler runs on this very thread and appends here
        self._snapshot_requests: deque[Callable[[str | None, str], None]] = deque()
        self._reload_requests: deque[Callable[[bool, str], None]] = deque()
        self._camera_open = False
        self.notifier: sdnotify.Notifier = sdnotify.NULL
        """Tells systemd READY/WATCHDOG/STATUS/STOPPING (set by the CLI)."""
        self.clock: Callable[[], float] = time.time
        """Wall clock for the schedule (tests hand in their own)."""
        self.sleep_poll_s = 2.0
        self._schedule = ScheduleClock()
        self._battery = LowBatterySwitch()
        self._asleep = False
        self._ready_sent = False
        self._camera_error: str | None = None
        self.ir = None
        """The IR illuminator (``[camera] ir_light``), or None."""
        self.gate = None
        """What opens events (``[trigger] mode``); None: software motion, as built by hand."""
        self.wake = None
        """``pir_wake``: whether the camera is meant to be on."""

    @classmethod
    def build(cls, cfg: StationConfig, camera: Camera | None = None,
              on_event: Callable[[dict], None] | None = None,
              power: "PowerSampler | None | bool" = True) -> "StationDaemon":
        """Wire the real pieces from a validated config.

        ``on_event`` receives each event's final record: after classification when the
        classifier is enabled, else as soon as the event is closed. ``power``: True builds
        the power sampler from ``[power]`` (None where there is nothing to read); tests hand
        in their own (an INA219 on a fake bus), or None for none.
        """
        from station.camera import open_camera
        from station.classifier.worker import ClassificationWorker
        from station.power import build_sampler

        camera = camera or open_camera(cfg.camera.uri, cfg.camera)
        store = EventStore(cfg.storage.data_dir)
        feed = None
        if cfg.mqtt.enabled:
            from station.feed.service import FeedService, prunable_when_fed

            feed = FeedService(cfg, store)
            guard = DiskGuard(store, cfg.storage.min_free_mb, cfg.storage.max_size_mb,
                              prunable=prunable_when_fed)
            user_on_event = on_event

            def on_event(record: dict) -> None:
                feed.on_event(record)
                if user_on_event is not None:
                    user_on_event(record)
        else:
            guard = DiskGuard(store, cfg.storage.min_free_mb, cfg.storage.max_size_mb)
        worker = None
        on_closed = on_event
        if cfg.classifier.enabled:
            worker = ClassificationWorker(cfg.classifier, store, on_classified=on_event)
            on_closed = worker.submit
        reserve = RecordReserve(cfg.storage.data_dir / RESERVE_NAME, int(cfg.storage.reserve_mb * 2**20))
        writer = EventWriter(store, guard, jpeg_quality=cfg.events.jpeg_quality,
                             max_pending_images=cfg.storage.writer_queue,
                             check_interval_s=cfg.storage.check_interval_s, on_closed=on_closed,
                             reserve=reserve, max_pending_clip_frames=cfg.storage.writer_queue)
        recorder = EventRecorder(cfg.events, cfg.station.id, cfg.station.deployment_id, writer,
                                 frame_period_s=1.0 / cfg.camera.fps, camera=camera.uri)
        daemon = cls(cfg, camera, default_detector_factory(cfg), store, writer, recorder, worker)
        daemon.feed = feed
        daemon.power = build_sampler(cfg) if power is True else power or None
        daemon._attach_gpio()
        daemon._attach_video()
        return daemon

    def _attach_gpio(self) -> None:
        """``[camera] ir_light`` and ``[trigger]``: open the pins (a pin taken or missing is a
        :class:`~station.gpio.pins.GpioError` naming the key, and the station does not start)."""
        from station.events.trigger import TriggerGate, WakeState
        from station.gpio.ir import IrLight
        from station.gpio.pir import GpioPir, ScenePir

        cfg = self.cfg
        self.ir = IrLight.from_config(cfg.camera)
        try:
            pir = None
            if cfg.trigger.pir_pin is not None:
                pir = GpioPir(cfg.trigger.pir_pin)
            elif cfg.trigger.mode != "motion":
                pir = ScenePir()   # a synthetic scene's own (the config allows no other)
            self.gate = TriggerGate(cfg.trigger.mode, pir, cfg.trigger.pir_window_s)
        except Exception:
            self._close_gpio()
            raise
        self.wake = WakeState(cfg.trigger.pir_wake_timeout_s) if cfg.trigger.mode == "pir_wake" else None
        self.recorder.trigger_source = self.gate.source
        self._dark = (cfg.model_copy(update={"schedule": ScheduleSection(active="dusk-dawn", margin_min=0)}),
                      ScheduleClock())

    def _close_gpio(self) -> None:
        for device in (getattr(self, "ir", None), getattr(getattr(self, "gate", None), "pir", None)):
            if device is not None:
                try:
                    device.close()
                except Exception as exc:  # noqa: BLE001 - closing at a stop must not hide the stop
                    log.warning("GPIO close failed", error=str(exc))

    def _attach_video(self) -> None:
        """``[events] video``: give the recorder a clip tap for this camera (before it opens)."""
        from station.events.clip_tap import make_tap

        self.recorder.clip_tap = make_tap(self.camera, self.writer, self.cfg.events,
                                          tuple(self.cfg.camera.main_size))

    def stop(self) -> None:
        """Ask the capture loop to finish; safe from a signal handler or another thread."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- operator requests (from the MQTT command thread; served by the capture loop) ----
    def request_snapshot(self, done: Callable[[str | None, str], None]) -> None:
        """Take a full-resolution still at the next frame as its own event.

        ``done(event_id, message)`` is called from the capture thread; event_id is None
        if no frame could be had.
        """
        self._snapshot_requests.append(done)

    def request_reload(self, done: Callable[[bool, str], None]) -> None:
        """Re-read and apply the config file; a bad file is refused and nothing changes."""
        self._reload_requests.append(done)

    def facts(self) -> StationFacts:
        """The state a health heartbeat reports (:class:`~station.feed.control.StationControl`)."""
        s = self.stats
        disk = DiskFacts()
        guard = self.writer.guard
        if guard is not None:
            try:
                disk = DiskFacts(free_mb=round(guard.free_bytes() / 2**20, 1),
                                 store_mb=round(self.store.size_bytes() / 2**20, 1), low=guard.low)
            except OSError:
                pass
        power = None
        if self.power is not None:
            from station.power import facts as power_facts

            power = power_facts(self.power.state(),
                                self._battery.low if self.cfg.schedule.low_battery is not None else None)
        return StationFacts(
            camera=CameraFacts(state=s.camera_state, uri=self.camera.uri, fps=self.camera.fps,
                               failures=s.camera_failures),
            disk=disk,
            pending_classification=self.classifier.pending if self.classifier is not None else 0,
            schedule=s.schedule_state, power=power,
            ir_light=IrFacts(**self.ir.facts()) if self.ir is not None else None)

    def _serve_reloads(self) -> None:
        while self._reload_requests:
            done = self._reload_requests.popleft()
            self.notifier.reloading()
            try:
                ok, message = self._reload()
            except Exception as exc:  # noqa: BLE001 - a reload must never take the station down
                log.exception("config reload failed")
                ok, message = False, f"reload failed: {exc}"
            if self._ready_sent:
                self.notifier.ready(self._status_line())
            _answer(done, ok, message)

    def _reload(self) -> tuple[bool, str]:
        from station.config import ConfigError

        if self.reloader is None:
            return False, "this station was not started from a config file"
        try:
            new = self.reloader()
        except ConfigError as exc:
            log.error("config reload refused", error=str(exc))
            return False, str(exc)
        old, notes = self.cfg, []
        new_camera = None
        if new.camera != old.camera:
            from station.camera import open_camera

            try:
                new_camera = open_camera(new.camera.uri, new.camera)
            except (ValueError, CameraError) as exc:
                log.error("config reload refused", error=str(exc))
                return False, f"camera.uri: {exc}"
        if new.station.id != old.station.id:
            return False, "station.id cannot change while running (topics and records carry it); restart the station"
        # The store and the broker connection are built once: keep them as they are.
        fixed = {"storage": new.storage.model_copy(update={"data_dir": old.storage.data_dir})}
        if new.storage.data_dir != old.storage.data_dir:
            notes.append("storage.data_dir takes effect at the next restart")
        if getattr(new, "mqtt", None) != getattr(old, "mqtt", None):
            notes.append("[mqtt] takes effect at the next restart")
            fixed["mqtt"] = old.mqtt
        if new.power != old.power:
            notes.append("[power] takes effect at the next restart")
            fixed["power"] = old.power
        gpio_keys = {k: getattr(old.camera, k) for k in type(old.camera).model_fields if k.startswith("ir_")}
        if new.trigger != old.trigger or any(getattr(new.camera, k) != v for k, v in gpio_keys.items()):
            notes.append("[trigger] and camera.ir_* (GPIO) take effect at the next restart")
            fixed["trigger"] = old.trigger
            fixed["camera"] = new.camera.model_copy(update=gpio_keys)
        new = new.model_copy(update=fixed)
        if new_camera is not None and new.camera == old.camera:
            new_camera = None  # only GPIO keys of [camera] changed
        self.cfg = new
        self.recorder.reconfigure(new.events, new.station.id, new.station.deployment_id)
        if new.motion != old.motion:
            self.detector_factory = default_detector_factory(new)
            self._detector = None  # rebuilt, with a fresh background, at the next frame
        if self.writer.guard is not None:
            self.writer.guard.reconfigure(new.storage.min_free_mb, new.storage.max_size_mb)
        if self.classifier is not None and new.classifier != old.classifier:
            self.classifier.reconfigure(new.classifier)
        if self.feed is not None:
            self.feed.reconfigure(new)
        if new_camera is not None:
            self.recorder.use_camera(new_camera.uri)
            self._close_camera()
            self.camera = new_camera
            self._camera_open = False
            notes.append(f"camera reopened as {self.camera.uri}")
        if new_camera is not None or new.events.video != old.events.video:
            self.recorder.interrupt("reload")
            if new_camera is None and self._camera_open:  # a camera that encodes sets it up when it opens
                self._close_camera()
                self._camera_open = False
                notes.append("camera reopened for [events] video")
            self._attach_video()
        from station.log import setup_logging

        setup_logging(new.logging.level)
        log.info("config reloaded", notes="; ".join(notes) or "-")
        return True, "reloaded" + (": " + "; ".join(notes) if notes else "")

    def _serve_snapshots(self, frame) -> None:
        while self._snapshot_requests:
            done = self._snapshot_requests.popleft()
            if frame is None or frame.main is None:
                _answer(done, None, "no full-resolution frame from the camera")
                continue
            event = self.recorder.snapshot(frame)
            if event.stills and event.stills[0].file is None:
                _answer(done, None, f"snapshot {event.id} could not be saved: {event.stills[0].error}")
            else:
                _answer(done, event.id, "snapshot taken")

    def _refuse_pending(self, why: str) -> None:
        """Answer every request still waiting (shutdown, camera down): none goes unanswered."""
        while self._snapshot_requests:
            _answer(self._snapshot_requests.popleft(), None, why)
        while self._reload_requests:
            _answer(self._reload_requests.popleft(), False, why)

    # -- the capture loop ---------------------------------------------------------------
    def run(self, duration_s: float | None = None) -> None:
        """Capture until stopped, until a finite source ends, or for ``duration_s``.

        ``duration_s`` counts on the camera's clock: wall time for live cameras, media
        time for replays and simulations (so ``--speed max`` runs a 10-minute scene in
        however long it takes to compute).
        """
        if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be a number of seconds above 0, got {duration_s!r}")
        self._run = _RunState(duration_s=duration_s, backoff=self.cfg.camera.retry_initial_s)
        try:
            self._start()
            while not self._stop.is_set() and self._capture_once():
                pass
        finally:
            self._finish()

    def _start(self) -> None:
        """Recover the store (records kept in the reserve, folders left without one), start
        the writer, classifier and feed threads."""
        cfg = self.cfg
        self._camera_open = False
        kept = self.writer.reserve.records() if self.writer.reserve is not None else []
        recovery = recover(self.store, kept, identity={
            "station_id": cfg.station.id, "deployment_id": cfg.station.deployment_id, "camera": self.camera.uri})
        self.writer.start(keep=recovery.unwritten)
        if self.classifier is not None:
            self.classifier.start()
        if self.feed is not None:
            self.feed.start(self)
        if self.power is not None:
            self.power.start()
        log.info("station started", station=cfg.station.id, deployment=cfg.station.deployment_id,
                 camera=self.camera.uri, data_dir=str(cfg.storage.data_dir),
                 recovered_events=len(recovery.interrupted), restored_records=len(recovery.restored),
                 rebuilt_records=len(recovery.rebuilt), records_waiting_for_room=len(recovery.unwritten),
                 schedule=cfg.schedule.describe(), power=cfg.power.describe())
        if cfg.schedule.mode != "always" and not self.camera.live:
            log.warning("schedule ignored: a replay or simulation runs on its own clock",
                        camera=self.camera.uri, schedule=cfg.schedule.describe())

    def _capture_once(self) -> bool:
        """Serve requests, read one frame, detect motion, feed the recorder. False ends
        the run (the media ran out, a replay cannot open, ``duration_s`` reached)."""
        run = self._run
        if run.duration_s is not None and self.camera.live and time.monotonic() - run.wall_start >= run.duration_s:
            return False  # also while the camera is failing or the schedule sleeps
        if self._reload_requests:
            self._serve_reloads()
        if self.camera.live and self._sleeping():
            return True
        if self._pir_sleeping():
            return True
        if not self._camera_open and not self._open_camera():
            return self.camera.live  # a file or folder will not get better by waiting
        period = 1.0 / self.camera.fps if self.camera.fps else 0.1
        try:
            snapshot = bool(self._snapshot_requests)
            want_main, still = self._wants_main(run.last_ts + period, snapshot)
            frame = self.camera.read(want_main=want_main)
            if snapshot:
                self._serve_snapshots(frame)
            if frame is None:
                log.info("end of media", camera=self.camera.uri, frames=self.stats.frames)
                self.stats.camera_state = "ended"
                return False
            result = self._detect(frame.lores)
        except CameraError as exc:
            self._alive()  # the call came back, with an error: the loop is not hung
            self.recorder.interrupt("camera_failed")
            self._close_camera()
            self._camera_open = False
            run.backoff = self._camera_failed(exc, run.backoff, "read")
            return True
        run.backoff = self.cfg.camera.retry_initial_s
        run.last_ts = frame.timestamp
        if run.first_ts is None:
            run.first_ts = frame.timestamp
        self._light(frame)
        result, awake = self._trigger(frame, result)
        if awake:
            self.recorder.feed(frame, result, still=still)
        self._count(result)
        self._alive()
        if time.monotonic() >= run.next_stats:
            run.next_stats = time.monotonic() + STATS_INTERVAL_S
            self._log_stats()
        if run.duration_s is not None:
            elapsed = (time.monotonic() - run.wall_start) if self.camera.live else (frame.timestamp - run.first_ts)
            if elapsed >= run.duration_s:
                return False
        return True

    # -- IR light and PIR (small hooks of the capture loop) ------------------------------------
    def _light(self, frame) -> None:
        """``[camera] ir_light``: the light level of this frame, or the sun, decides."""
        if self.ir is None:
            return
        if self.ir.mode == "light":
            self.ir.frame(frame.lores, frame.timestamp)
        else:
            dark_cfg, clock = self._dark
            self.ir.dark(clock.check(dark_cfg, frame.timestamp)[0])

    def _trigger(self, frame, result: MotionResult) -> tuple[MotionResult, bool]:
        """``[trigger] mode``: (what the recorder is told, is the camera awake). In pir_wake a
        frame while asleep is not used (a replay or simulation keeps its clock running; a live
        camera is closed instead, see :meth:`_pir_sleeping`)."""
        if self.gate is None:
            return result, True
        result = self.gate.gate(frame, result)
        if self.wake is None:
            return result, True
        awake, woke = self.wake.update(frame.timestamp, self.gate.pir_now, self.recorder.current is not None)
        if woke:
            log.info("PIR: awake", camera=self.camera.uri)
            if self._detector is not None:
                self._detector.reset()  # as a camera just opened: a fresh background
        if self.ir is not None:
            self.ir.sleep(not awake)
        if not awake and self.camera.live and self._camera_open:
            log.info("PIR: quiet; camera closed", camera=self.camera.uri)
            self._close_camera()
            self._camera_open = False
        return result, awake

    def _pir_sleeping(self) -> bool:
        """``pir_wake`` on a live camera: while asleep the camera is closed and the loop waits
        on the PIR (feeding the watchdog); True while asleep."""
        if self.wake is None or self.wake.awake or not self.camera.live or self._camera_open:
            return False
        if self._snapshot_requests:
            self._snapshot_while_asleep()
        step = self.sleep_poll_s
        if self.gate.pir.wait(step):
            return False          # the next frame sees the PIR high and wakes
        self._alive()
        return True

    def _wants_main(self, next_ts: float, snapshot: bool) -> tuple[bool, bool | None]:
        """(read a full-resolution frame?, is it a still?). A clip cut from the station's
        own frames needs one every frame; then only the due ones are stills."""
        due = snapshot or self.recorder.still_due(next_ts)
        tap = self.recorder.clip_tap
        if tap is not None and tap.needs_every_main:
            return True, due
        return due, None

    def _open_camera(self) -> bool:
        """Open the camera; on failure, retry later (live) or give up (a replay). True if open."""
        try:
            self.camera.open()
        except CameraError as exc:
            if not self.camera.live:
                self.failure = str(exc)
                self.stats.camera_state = "failed"
                log.error("cannot open replay source", camera=self.camera.uri, error=str(exc))
                return False
            self._run.backoff = self._camera_failed(exc, self._run.backoff, "open")
            return False
        self._camera_open = True
        self._camera_error = None
        self.stats.camera_state = "ok"
        log.info("camera open", camera=self.camera.uri)
        return True

    def _finish(self) -> None:
        """Close the open event and the camera; write, classify and deliver what the run
        produced (all of it when a replay ran out or ``finish_on_stop``; on a signal only
        the event in hand: the rest waits on disk for the next start)."""
        self.notifier.stopping(f"stopping: {self.recorder.events_closed} events, {self.stats.frames} frames")
        self._refuse_pending("the station is stopping")
        self.recorder.interrupt("shutdown" if self.stats.camera_state != "ended" else "end_of_media")
        self._close_camera()
        self._close_gpio()
        self.writer.stop()
        finish_all = not self._stop.is_set() or self.finish_on_stop
        if self.classifier is not None:
            if finish_all:
                self.classifier.drain()
            self.classifier.stop()
        if self.feed is not None:
            if finish_all:  # a replay ran out: the broker gets it all
                self.feed.wait_delivered(60)
            self.feed.stop()
        if self.power is not None:
            self.power.stop()
        self._log_stats()
        log.info("station stopped", events=self.recorder.events_closed, frames=self.stats.frames)

    def _detect(self, lores) -> MotionResult:
        shape = lores.shape[:2]
        if lores.ndim != 2:
            raise CameraError(f"{self.camera.uri}: low-resolution frame is not grayscale (shape {lores.shape})")
        if self._detector is None or shape != self._detector_shape:
            if self._detector is not None:
                log.warning("motion frame size changed; new background", old=self._detector_shape, new=shape)
            self._detector = self.detector_factory((shape[1], shape[0]), self.camera.fps)
            self._detector_shape = shape
        return self._detector.detect(lores)

    def _count(self, result: MotionResult) -> None:
        s = self.stats
        s.frames += 1
        s.last_frame_monotonic = time.monotonic()
        s.motion_frames += result.motion
        s.light_jumps += result.light_jump

    def _camera_failed(self, exc: Exception, backoff: float, stage: str) -> float:
        while self._snapshot_requests:
            _answer(self._snapshot_requests.popleft(), None, f"camera failed: {exc}")
        self.stats.camera_failures += 1
        self.stats.camera_state = "failed"
        self._camera_error = str(exc)
        log.error("camera failed; retrying", stage=stage, camera=self.camera.uri, error=str(exc),
                  retry_in_s=round(backoff, 1), failures=self.stats.camera_failures)
        self._wait(backoff)
        if self._detector is not None:
            self._detector.reset()
        return min(backoff * 2, self.cfg.camera.retry_max_s)

    # -- systemd and the schedule ------------------------------------------------------------
    def _alive(self) -> None:
        """The loop made progress: READY=1 the first time, then WATCHDOG=1 (at half systemd's
        interval) and STATUS=. Never called from anywhere but the capture loop."""
        if not self.notifier.enabled:
            return
        if not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready(self._status_line())
        self.notifier.keepalive(self._status_line)

    def _wait(self, seconds: float) -> None:
        """Idle (camera backoff, scheduled sleep) and keep the watchdog fed meanwhile: the
        loop is healthy, only waiting. Returns early on stop."""
        deadline = time.monotonic() + seconds
        ping = self.notifier.ping_interval_s
        step = ping / 2 if ping else seconds
        while not self._stop.is_set():
            self._alive()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, step))

    def _status_line(self) -> str:
        s = self.stats
        if self._asleep:
            schedule = "" if self._battery.low else f" ({self.cfg.schedule.describe()})"
            return f"{s.schedule_state}{schedule}; {self.recorder.events_closed} events"
        if s.camera_state == "failed":
            return (f"camera {self.camera.uri} failed ({s.camera_failures}x): {self._camera_error}; "
                    f"retrying; {self.recorder.events_closed} events")
        age = "-" if s.last_frame_monotonic is None else f"{time.monotonic() - s.last_frame_monotonic:.1f} s"
        return (f"capturing {self.camera.uri}: {s.frames} frames, {self.recorder.events_closed} events, "
                f"last frame {age} ago")

    def _sleeping(self) -> bool:
        """Outside the schedule's active hours: the camera closed (the sensor and ISP draw
        most of a Pi camera trap's power, and no frames means no motion detection either),
        requests still served, the watchdog fed. True while asleep. The schedule is
        ``[schedule] low_battery_active`` while the battery is low (station.power.low_battery)."""
        cfg = self._battery.config(self.cfg, self.power.state() if self.power is not None else None)
        if cfg.schedule.mode == "always" and not self._asleep:
            self.stats.schedule_state = "active"
            return False
        note = self._battery.note(self.cfg)
        now = self.clock()
        active, change = self._schedule.check(cfg, now)
        if active:
            if self._asleep:
                self._asleep = False
                log.info("schedule: awake; opening the camera", until=format_change(change, now),
                         schedule=cfg.schedule.describe(), low_battery=self._battery.low)
                if self.ir is not None:
                    self.ir.sleep(False)
            self.stats.schedule_state = "active" + note
            return False
        until = format_change(change, now)
        if not self._asleep:
            self._asleep = True
            self.recorder.interrupt("schedule")
            if self._camera_open:
                self._close_camera()
                self._camera_open = False
            self._detector = None  # a fresh background when the camera comes back
            log.info("schedule: sleeping; camera closed", until=until, schedule=cfg.schedule.describe(),
                     low_battery=self._battery.low)
            if self.ir is not None:
                self.ir.sleep(True)
        self.stats.schedule_state = (f"sleeping until {until}" if change else f"sleeping ({until})") + note
        if self._snapshot_requests:
            self._snapshot_while_asleep()
        left = change.timestamp() - now if change is not None else self.sleep_poll_s
        self._wait(max(0.0, min(self.sleep_poll_s, left)))
        return True

    def _snapshot_while_asleep(self) -> None:
        """A snapshot asked for outside active hours (a ranger checking the lens): open the
        camera for it, let the exposure settle, take the still, close the camera again."""
        try:
            self.camera.open()
            try:
                frame = None
                for _ in range(max(1, round(self.camera.fps * SNAPSHOT_WARMUP_S))):
                    frame = self.camera.read(want_main=False)
                    if frame is None:
                        break
                self._serve_snapshots(self.camera.read(want_main=True) if frame is not None else None)
            finally:
                self._close_camera()
        except CameraError as exc:
            log.error("snapshot while asleep failed", camera=self.camera.uri, error=str(exc))
            while self._snapshot_requests:
                _answer(self._snapshot_requests.popleft(), None, f"camera failed: {exc}")

    def _close_camera(self) -> None:
        try:
            self.camera.close()
        except Exception as exc:  # noqa: BLE001 - a broken camera may fail to close too
            log.warning("camera close failed", camera=self.camera.uri, error=str(exc))

    def _log_stats(self) -> None:
        s = self.stats
        power = {}
        if self.power is not None and (reading := self.power.state().reading) is not None:
            power = {"battery_v": reading.battery_v, "power_w": reading.power_w}
        log.info("stats", frames=s.frames, motion_frames=s.motion_frames, light_jumps=s.light_jumps,
                 events=self.recorder.events_closed, stills_written=self.writer.stills_written,
                 clips_written=self.writer.clips_written,
                 stills_dropped=self.writer.stills_dropped, writer_pending=self.writer.pending,
                 classified=self.classifier.classified if self.classifier else "off",
                 classify_pending=self.classifier.pending if self.classifier else 0,
                 camera=s.camera_state, camera_failures=s.camera_failures, **power)


def _answer(done: Callable, *args) -> None:
    try:
        done(*args)
    except Exception:  # noqa: BLE001 - a requester's callback must not stop capture
        log.exception("answering an operator request failed")


class SceneTruthError(RuntimeError):
    """The ground truth of a simulated scene could not be written; the message names the file."""


def write_truth_if_simulated(camera: Camera, data_dir: Path) -> Path | None:
    """A synthetic scene knows what crossed when; keep it beside the events for scoring.

    Raises :class:`SceneTruthError` (one line, naming the file) when it cannot be written,
    e.g. on a full card; the events are not affected."""
    writer = getattr(camera, "write_truth", None)
    if writer is None:
        return None
    path = Path(data_dir) / "scene_truth.json"
    try:
        writer(path)
    except OSError as exc:
        raise SceneTruthError(f"{path}: the scene's ground truth was not written: {exc.strerror or exc}") from None
    return path
