"""The collector service: one place that builds the object graph from the config.

    service = CollectorService.build(cfg)   # checks the database, thumbnails folder, feed files
    service.start()                         # ingest (MQTT -> database), alerts, HTTP API/dashboard
    service.wait()                          # until stop() (SIGTERM/SIGINT in the CLI)
    service.stop()

Each part gets what it needs handed in: the ingest a way to open the database and the
alerter's ``submit``; the web app the config and the ingest's live counters.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from station.collector.alerts import Alerter
from station.collector.db import Database, StorageError
from station.collector.ingest import Ingest
from station.config.collector import CollectorConfig
from station.log import get_logger

log = get_logger("collector")


class CollectorSetupError(ValueError):
    """A collector setting that cannot work; the message names the key."""


class CollectorService:
    def __init__(self, cfg: CollectorConfig, ingest: Ingest, alerter: Alerter | None, http: Any | None):
        self.cfg = cfg
        self.ingest = ingest
        self.alerter = alerter
        self.http = http
        self._stop_requested = threading.Event()
        self._stopped = False

    @classmethod
    def build(cls, cfg: CollectorConfig, *, http: bool | None = None,
              on_stored: Callable[[Sequence[dict[str, Any]]], None] | None = None) -> "CollectorService":
        """``on_stored`` also hears of each batch of newly stored detections (after alerts)."""
        data_dir = cfg.collector.data_dir
        try:
            cfg.collector.thumbnails_dir.mkdir(parents=True, exist_ok=True)
            probe = cfg.collector.thumbnails_dir / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CollectorSetupError(f"collector.data_dir = {str(data_dir)!r}: not a writable folder "
                                      f"({exc.strerror or exc})") from None
        url = cfg.collector.sqlite_resolved_url()

        def open_db() -> Database:
            return Database.open(url)

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
        server = None
        if cfg.http.enabled if http is None else http:
            from station.collector.web.app import create_app
            from station.collector.web.server import HttpServer
            app = create_app(cfg, stats=lambda: service_stats())
            server = HttpServer(app, host=cfg.http.host, port=cfg.http.port)
        service = cls(cfg, ingest, alerter, server)

        def service_stats() -> dict[str, Any]:
            return service.stats()

        return service

    def start(self) -> "CollectorService":
        self.ingest.start()
        if self.http is not None:
            self.http.start()
            log.info("collector dashboard", url=self.url)
        return self

    @property
    def url(self) -> str | None:
        return None if self.http is None else self.http.url + "/"

    def stats(self) -> dict[str, Any]:
        out = {"collector_id": self.cfg.collector.id, "ingest": self.ingest.stats()}
        if self.alerter is not None:
            out["alerts"] = self.alerter.stats()
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`request_stop` (or ``timeout``); True if a stop was requested."""
        return self._stop_requested.wait(timeout)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        if self.http is not None:
            self.http.stop()
        self.ingest.stop()
        if self.alerter is not None:
            self.alerter.stop(timeout=self.cfg.alerts.timeout_s)

    def request_stop(self) -> None:
        """From a signal handler: wake :meth:`wait`; the caller then calls :meth:`stop`."""
        self._stop_requested.set()
