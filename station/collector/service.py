"""The collector service: one place that builds the object graph from the config.

    service = CollectorService.build(cfg)   # checks the database, thumbnails folder, feed files
    service.start()                         # ingest (MQTT -> database), alerts, HTTP API/dashboard
    service.wait()                          # until stop() (SIGTERM/SIGINT in the CLI)
    service.stop()

Each part gets what it needs handed in: the ingest a way to open the database and the
alerter's ``submit``; the web app the config and the ingest's live counters.

Under systemd (``notifier`` set by the CLI): READY=1 once started, STOPPING=1 on stop, and
a watchdog thread that pings only while the ingest's writer thread is alive and not stuck
(:class:`WriterWatch`), so a writer hung in a database call gets the service restarted.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from station import sdnotify

from station.collector.alerts import Alerter
from station.collector.db import Database, StorageError
from station.collector.ingest import Ingest
from station.collector.outbound import Outbound, PahoLink
from station.collector.republish import DetectionFeed
from station.collector.snapshots import SnapshotCommands, SnapshotDesk
from station.collector.station_watch import StationWatch
from station.config.collector import CollectorConfig
from station.log import get_logger

log = get_logger("collector")


WRITER_STUCK_S = 60.0
"""The writer may be busy (not waiting on its queue or a retry timer) this long without
finishing a batch before it counts as stuck. A batch is at most collector.batch_max
messages in one transaction: seconds, even on a slow SD card or PostgreSQL."""


class CollectorSetupError(ValueError):
    """A collector setting that cannot work; the message names the key."""


def preflight(cfg: CollectorConfig, *, http: bool | None = None) -> None:
    """Settings that can be checked before anything starts, creating nothing (for
    ``station config check-collector`` and :meth:`CollectorService.build`); raises
    :class:`CollectorSetupError` naming the key. ``http``: whether the API will run
    (default ``http.enabled``)."""
    if cfg.http.enabled if http is None else http:
        token_file = cfg.http.token_file
        if not cfg.http.public and token_file is None:
            raise CollectorSetupError("http.token_file: not set, but http.public = false: nobody could read the API")
        if token_file is not None:
            from station.collector.web.auth import TokenFileError, read_tokens
            try:
                tokens = read_tokens(token_file)
            except TokenFileError as exc:
                raise CollectorSetupError(str(exc)) from None
            if not tokens and not cfg.http.public:
                raise CollectorSetupError(f"http.token_file {token_file}: holds no token, but http.public = false: "
                                          f"nobody could read the API")
    url = cfg.collector.sqlite_resolved_url()
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):].partition("?")[0])
        # data_dir itself is made at start (and by the install script); any other folder must exist
        if str(path) != ":memory:" and path.parent != cfg.collector.data_dir.absolute() \
                and not path.parent.is_dir():
            raise CollectorSetupError(f"collector.database_url: the folder {path.parent} does not exist "
                                      f"(create it, or correct the path)")


def _waiting(thread: threading.Thread) -> bool:
    """Is ``thread`` blocked in a wait (an empty queue, a retry's backoff timer)? Both go
    through ``threading.Condition.wait``; a call stuck in a driver does not."""
    frame = sys._current_frames().get(thread.ident)  # noqa: SLF001 - a read-only look, CPython and PyPy
    return frame is not None and frame.f_code is threading.Condition.wait.__code__


class WriterWatch:
    """Is the ingest's writer thread alive and moving? It is healthy while it waits (for
    messages, or between retries while the database is down: the ingest retries by itself,
    a restart would not bring the database back) or finishes batches; it is stuck when it
    has been busy for ``stuck_after_s`` without finishing one (a database call that never
    returns), and dead when its thread has ended."""

    def __init__(self, thread: Callable[[], threading.Thread | None], batches: Callable[[], int],
                 stuck_after_s: float = WRITER_STUCK_S):
        self._thread, self._batches = thread, batches
        self.stuck_after_s = stuck_after_s
        self._seen_batches: int | None = None
        self._moving_at = time.monotonic()

    def check(self, now: float | None = None) -> tuple[bool, str]:
        now = time.monotonic() if now is None else now
        thread = self._thread()
        if thread is None or not thread.is_alive():
            return False, "ingest writer thread has ended"
        batches = self._batches()
        if batches != self._seen_batches or _waiting(thread):
            self._seen_batches, self._moving_at = batches, now
            return True, "ok"
        busy = now - self._moving_at
        if busy >= self.stuck_after_s:
            return False, f"ingest writer stuck: busy {busy:.0f} s without finishing a batch"
        return True, "ok"


class CollectorService:
    def __init__(self, cfg: CollectorConfig, ingest: Ingest, alerter: Alerter | None, http: Any | None,
                 outbound: Outbound | None = None, watch: StationWatch | None = None,
                 snapshots: SnapshotDesk | None = None):
        self.cfg = cfg
        self.ingest = ingest
        self.outbound = outbound
        self.alerter = alerter
        self.watch = watch
        self.snapshots = snapshots
        self.http = http
        self._stop_requested = threading.Event()
        self._stopped = False
        self.notifier: sdnotify.Notifier = sdnotify.NULL
        self._watchdog: threading.Thread | None = None

    @classmethod
    def build(cls, cfg: CollectorConfig, *, http: bool | None = None,
              on_stored: Callable[[Sequence[dict[str, Any]]], None] | None = None) -> "CollectorService":
        """``on_stored`` also hears of each batch of newly stored detections (after alerts)."""
        serve = cfg.http.enabled if http is None else http
        preflight(cfg, http=serve)
        data_dir = cfg.collector.data_dir
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # exact coordinates: the collector's only
            cfg.collector.thumbnails_dir.mkdir(mode=0o700, exist_ok=True)
            probe = cfg.collector.thumbnails_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CollectorSetupError(f"collector.data_dir = {str(data_dir)!r}: not a writable folder "
                                      f"({exc.strerror or exc})") from None
        url = cfg.collector.sqlite_resolved_url()

        def open_db() -> Database:
            db = Database.open(url)
            db.writer = cfg.collector.id
            return db

        try:
            with open_db() as db:
                db.migrate()
        except StorageError as exc:
            raise CollectorSetupError(f"collector.database_url: {exc}") from None
        alerter = Alerter.from_config(cfg.alerts, timezone=cfg.http.timezone) if (cfg.alerts.urls or cfg.alerts.urls_file) else None
        listeners = [f for f in (alerter.submit if alerter is not None else None, on_stored) if f is not None]

        def stored(payloads: Sequence[dict[str, Any]]) -> None:
            for listener in listeners:
                listener(payloads)

        ingest = Ingest(cfg, open_db, on_stored=stored if listeners else None)
        watch = None
        if alerter is not None and cfg.alerts.station_alerts:  # silent, gone, trouble, power, digest
            watch = StationWatch.from_config(cfg, alerter.targets, open_db,
                                             listening=lambda: ingest.listening_since)
        streams: list[Any] = [DetectionFeed(cfg)] if cfg.feed.enabled else []
        if serve:  # the dashboard's "a picture now": requests published as commands
            streams.append(SnapshotCommands(cfg))
        outbound = snapshots = None
        if streams:  # publishes on the ingest's connection, woken after each of its commits
            outbound = Outbound(PahoLink(ingest.mqtt_client), open_db, streams)
            ingest.on_committed = outbound.wake
            try:
                outbound.prepare()  # before the ingest stores anything: a new feed starts after what is stored
            except StorageError as exc:
                raise CollectorSetupError(f"collector.database_url: {exc}") from None
        if serve and outbound is not None:
            snapshots = SnapshotDesk(cfg, open_db, wake=outbound.wake)
            ingest.add_subscription(snapshots.results_topic, snapshots.on_result)
        server = None
        if serve:
            from station.collector.web.app import create_app
            from station.collector.web.auth import TokenFileError
            from station.collector.web.server import HttpServer
            try:
                app = create_app(cfg, stats=lambda: service_stats(), snapshots=snapshots)
            except (TokenFileError, ValueError) as exc:  # the token file changed since preflight
                raise CollectorSetupError(str(exc)) from None
            server = HttpServer(app, host=cfg.http.host, port=cfg.http.port)
        service = cls(cfg, ingest, alerter, server, outbound, watch, snapshots)

        def service_stats() -> dict[str, Any]:
            return service.stats()

        return service

    def start(self) -> "CollectorService":
        if self.snapshots is not None:
            self.snapshots.start()
        self.ingest.start()
        if self.outbound is not None:
            self.outbound.start()
        if self.watch is not None:
            self.watch.start()
        if self.http is not None:
            self.http.start()
            log.info("collector dashboard", url=self.url)
        if self.notifier.enabled:
            self.notifier.ready(self._status_line())
            if self.notifier.ping_interval_s:
                self._watchdog = threading.Thread(target=self._watchdog_loop, name="collector-watchdog",
                                                  daemon=True)
                self._watchdog.start()
        return self

    def _status_line(self) -> str:
        s = self.ingest.stats()
        c = s["counters"]
        state = "connected" if s["connected"] else f"not connected ({s['last_error'] or 'connecting'})"
        return (f"broker {state}; stored {c.get('stored', 0)}, duplicates {c.get('duplicates', 0)}, "
                f"rejected {c.get('rejected', 0)}, queued {s['queued']}")

    def _watchdog_loop(self) -> None:
        """WATCHDOG=1 while the writer is healthy; when it is not, the pings stop and systemd
        restarts the collector (unacknowledged messages wait on the broker meanwhile)."""
        watch = WriterWatch(lambda: self.ingest._writer, lambda: self.ingest.counters["batches"])  # noqa: SLF001
        step = min(1.0, (self.notifier.ping_interval_s or 2.0) / 2)
        complained = False
        while not self._stop_requested.wait(step):
            healthy, why = watch.check()
            if healthy:
                complained = False
                self.notifier.keepalive(self._status_line)
            elif not complained:
                complained = True
                log.error("collector unhealthy; no more watchdog pings, systemd will restart it", reason=why)
                self.notifier.status(f"unhealthy: {why}")

    @property
    def url(self) -> str | None:
        return None if self.http is None else self.http.url + "/"

    def stats(self) -> dict[str, Any]:
        out = {"collector_id": self.cfg.collector.id, "ingest": self.ingest.stats()}
        if self.alerter is not None:
            out["alerts"] = self.alerter.stats()
        if self.outbound is not None:
            out["feed"] = self.outbound.stats()
        if self.watch is not None:
            out["station_alerts"] = self.watch.stats()
        if self.snapshots is not None:
            out["snapshots"] = dict(self.snapshots.counters)
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`request_stop` (or ``timeout``); True if a stop was requested."""
        return self._stop_requested.wait(timeout)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        self.notifier.stopping()
        if self.http is not None:
            self.http.stop()
        if self.watch is not None:
            self.watch.stop(timeout=self.cfg.alerts.timeout_s)
        if self.outbound is not None:
            self.outbound.stop()
        self.ingest.stop()
        if self.snapshots is not None:
            self.snapshots.stop()
        if self.alerter is not None:
            self.alerter.stop(timeout=self.cfg.alerts.timeout_s)

    def request_stop(self) -> None:
        """From a signal handler: wake :meth:`wait`; the caller then calls :meth:`stop`."""
        self._stop_requested.set()
