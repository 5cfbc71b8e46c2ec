"""Ranger alerts: leopard, tiger, human and vehicle detections sent through Apprise (docs/alerts.md).

    alerter = Alerter.from_config(cfg.alerts, timezone=cfg.http.timezone)  # ConfigError names the key
    alerter.submit(new_payloads)  # by the ingest, after the commit: returns at once, never blocks
    alerter.stop(timeout=10)      # sends what is held, joins the worker

Rate limit per (station_id, tag): the first detection goes out at once; more within
``min_interval_s`` are held and counted, and when the interval ends one summary goes out
("+N more since HH:MM UTC", with the latest of them), which starts the next interval.
Messages never carry coordinates: they pass through Telegram, mail servers and the like.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

import apprise

from station.config.collector import AlertsSection, load_collector_config
from station.config.load import ConfigError
from station import times
from station.log import get_logger

log = get_logger("collector.alerts")
DEFAULT_TAGS = ("leopard", "tiger", "human", "vehicle")
COUNTERS = ("sent", "failed", "retried", "suppressed", "summaries", "dropped")


@dataclass(frozen=True)
class Target:
    """One notification URL: its config key and Apprise's service name are safe to log, the URL is not."""
    key: str        # "alerts.urls[0]" or "alerts.urls_file line 3"
    service: str    # "Telegram", "E-Mail", "JSON", ...
    notifier: apprise.Apprise = field(repr=False)


def load_targets(section: AlertsSection, source: str = "<collector config>") -> list[Target]:
    """Every configured URL, parsed by Apprise (no network); one ConfigError naming each bad key."""
    entries = [(f"alerts.urls[{i}]", url.get_secret_value().strip()) for i, url in enumerate(section.urls)]
    problems: list[str] = []
    if section.urls_file is not None:
        try:
            lines = section.urls_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"alerts.urls_file = '{section.urls_file}': cannot read it "
                            f"({getattr(exc, 'strerror', None) or exc})")
            lines = []
        entries += [(f"alerts.urls_file ({section.urls_file}) line {n}", line.strip())
                    for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")]
    targets = []
    for key, url in entries:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:  # name the scheme only: the rest of the URL is a secret
            scheme = url.split("://", 1)[0] if "://" in url else ""
            shown = f"scheme '{scheme}'" if scheme.isalnum() and len(scheme) <= 16 else "no scheme://"
            problems.append(f"{key}: not a URL Apprise understands ({shown}; "
                            "see https://github.com/caronc/apprise/wiki)")
            continue
        plugin.socket_connect_timeout = plugin.socket_read_timeout = section.timeout_s
        targets.append(Target(key, str(getattr(plugin, "service_name", None) or "unknown"), apprise.Apprise(plugin)))
    if problems:
        raise ConfigError(source, problems)
    return targets


def compose(payload: dict[str, Any], *, now: float, tz: ZoneInfo | None = None, dashboard_url: str | None = None,
            held: int = 0, since: float | None = None, late_after_s: float = 3600.0) -> tuple[str, str]:
    """(title, body) of one alert; with ``held`` > 0 a summary of that many more since ``since``.
    Only the station id, time, tag, species, confidence and event id leave the collector: no location."""
    station, tag = payload["station_id"], payload["tag"]
    when = times.parse(payload["trigger"])

    def stamp(t: datetime, fmt: str) -> str:
        local = f" ({t.astimezone(tz).strftime(fmt)} {tz.key})" if tz is not None and tz.key != "UTC" else ""
        return f"{t.astimezone(dt_timezone.utc).strftime(fmt)} UTC{local}"

    title, lines = f"{tag.capitalize()} at {station}", []
    if held:
        since_dt = datetime.fromtimestamp(since if since is not None else now, dt_timezone.utc)
        title += f" (+{held} more since {since_dt:%H:%M} UTC)"
        lines.append(f"{held} more {tag} detection(s) at {station} since the alert at "
                     f"{stamp(since_dt, '%H:%M')}. The latest:")
    species, conf = payload.get("species"), payload.get("confidence")
    lines.append(f"{tag.capitalize()}{f' ({species})' if species and species != tag else ''} at station "
                 f"{station}" + (f", confidence {conf:.0%}." if conf is not None else "."))
    lines += [f"Time: {stamp(when, '%Y-%m-%d %H:%M:%S')}", f"Event: {payload['event_id']}"]
    if (age := now - when.timestamp()) > late_after_s:
        lines.append(f"LATE: recorded {int(age // 3600)} h {int(age % 3600 // 60):02d} min before it arrived "
                     "(the station was offline, or its clock is wrong).")
    if dashboard_url:
        lines.append("Dashboard: " + dashboard_url.replace("{event_id}", payload["event_id"])
                     .replace("{station_id}", station))
    return title, "\n".join(lines)


def deliver(target: Target, title: str, body: str, notify_type: str = apprise.NotifyType.WARNING) -> bool:
    """One notice to one target, now; False when it was not delivered (never raises)."""
    try:
        return bool(target.notifier.notify(body=body, title=title, notify_type=notify_type,
                                           body_format=apprise.NotifyFormat.TEXT))
    except Exception as exc:  # Apprise reports failures as False; a plugin that raises counts as one
        log.warning("alert service raised", service=target.service, key=target.key, error=type(exc).__name__)
        return False


class Sender:
    """Delivers a notice to every target from the caller's thread: a target that fails is
    retried once after ``retry_delay_s`` (cut short when ``stopping`` is set), then counted
    and logged by its service and config key, never its URL. ``count(name)`` hears of each
    ``sent``, ``failed`` and ``retried``."""

    def __init__(self, targets: Sequence[Target], *, retry_delay_s: float = 5.0,
                 stopping: threading.Event | None = None, count: Callable[[str], None] | None = None):
        self.targets = list(targets)
        self._retry_delay_s = retry_delay_s
        self._stopping = stopping or threading.Event()
        self._count = count or (lambda name: None)

    def send(self, title: str, body: str, notify_type: str = apprise.NotifyType.WARNING, **fields: Any) -> bool:
        """True when every target took it."""
        every = True
        for target in self.targets:
            ok = deliver(target, title, body, notify_type)
            if not ok:
                self._count("retried")
                self._stopping.wait(self._retry_delay_s)
                ok = deliver(target, title, body, notify_type)
            self._count("sent" if ok else "failed")
            every = every and ok
            (log.info if ok else log.warning)("alert sent" if ok else "alert failed after one retry",
                                              service=target.service, key=target.key, **fields)
        return every


@dataclass
class _Window:  # per (station_id, tag): the interval that ends at `until` began with a message at `since`
    until: float
    since: float
    held: int = 0
    latest: dict | None = None


class Alerter:
    """Sends alerts from its own worker thread (started by the first submit) fed by a bounded queue."""

    def __init__(self, targets: Sequence[Target], *, tags: Iterable[str] = DEFAULT_TAGS,
                 min_interval_s: float = 900.0, min_confidence: float = 0.0, dashboard_url: str | None = None,
                 timezone: str = "UTC", clock: Callable[[], float] = time.time, queue_size: int = 1000,
                 retry_delay_s: float = 5.0, poll_s: float = 1.0, late_after_s: float = 3600.0):
        self.targets, self.tags = list(targets), frozenset(tags)
        self.min_interval_s, self.min_confidence = min_interval_s, min_confidence
        self.dashboard_url, self.late_after_s, self.tz = dashboard_url, late_after_s, ZoneInfo(timezone)
        self._clock, self._retry_delay_s, self._poll_s = clock, retry_delay_s, poll_s
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=queue_size)
        self._windows: dict[tuple[str, str], _Window] = {}  # by (station_id, tag)
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock, self._stopping = threading.Lock(), threading.Event()
        self._sender = Sender(self.targets, retry_delay_s=retry_delay_s, stopping=self._stopping, count=self._count)
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        log.info("alerts ready", services=",".join(t.service for t in self.targets) or "none", urls=len(targets))

    @classmethod
    def from_config(cls, section: AlertsSection, *, source: str = "<collector config>", **options: Any) -> Alerter:
        """``options``: timezone (e.g. cfg.http.timezone), clock, queue_size, retry_delay_s, poll_s, late_after_s."""
        return cls(load_targets(section, source), tags=section.tags, min_interval_s=section.min_interval_s,
                   min_confidence=section.min_confidence, dashboard_url=section.dashboard_url, **options)

    def submit(self, payloads: Sequence[dict]) -> None:
        """Queue the new detections of one committed batch; never blocks, drops (counted) when full."""
        if not self.targets or self._stopping.is_set():
            return
        with self._lock:
            if not self._thread.is_alive() and self._thread.ident is None:
                self._thread.start()  # on the first batch, so building an Alerter starts nothing
        dropped = 0
        for p in payloads:
            try:
                if p.get("tag") in self.tags and (p.get("confidence") or 0.0) >= self.min_confidence:
                    self._queue.put_nowait(p)
            except queue.Full:
                dropped += 1
        if dropped:
            self._count("dropped", dropped)
            log.warning("alert queue full; alerts dropped", dropped=dropped, queue_size=self._queue.maxsize)

    def stats(self) -> dict[str, int]:
        """Counters: sent/failed/retried (per URL), suppressed (held by the rate limit), summaries, dropped."""
        with self._lock:
            return {**self._counts, "queued": self._queue.qsize()}

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued and held (summaries at once), then join the worker (at most ``timeout``)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("alerts still sending at stop; abandoned", timeout_s=timeout)

    def send_test(self) -> list[tuple[Target, bool]]:
        """Send one test message to every URL now, in this thread; (target, delivered) for each."""
        body = "A test from the camera-trap collector. Real alerts look like:\n\n" + compose(
            {"station_id": "STATION", "tag": "leopard", "species": "leopard", "confidence": 0.91,
             "trigger": datetime.now(dt_timezone.utc).isoformat(), "event_id": "EVENT-ID"},
            now=time.time(), tz=self.tz, dashboard_url=self.dashboard_url)[1]
        return [(t, deliver(t, "Test alert", body)) for t in self.targets]

    # -- the worker ----------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _run(self) -> None:
        while True:
            last = self._stopping.is_set() and self._queue.empty()  # then send every held summary and end
            try:
                payload = None if last else self._queue.get(timeout=self._poll_s)
            except queue.Empty:
                payload = None
            try:
                self._flush(force=last)
                if payload is not None:
                    self._handle(payload)
            except Exception:  # a bad payload or a plugin bug must not end alerting
                log.exception("alert failed unexpectedly")
            if last:
                return

    def _handle(self, payload: dict) -> None:
        key, now = (payload["station_id"], payload["tag"]), self._clock()
        window = self._windows.get(key)
        if window is not None and now < window.until:
            window.held, window.latest = window.held + 1, payload
            self._count("suppressed")
            log.info("alert held", station=key[0], tag=key[1], held=window.held, event_id=payload["event_id"])
            return
        self._windows[key] = _Window(until=now + self.min_interval_s, since=now)
        self._send(payload, now)

    def _flush(self, force: bool) -> None:
        now = self._clock()
        for key, window in list(self._windows.items()):
            if window.held and (force or now >= window.until):
                self._windows[key] = _Window(until=now + self.min_interval_s, since=now)
                self._count("summaries")
                self._send(window.latest, now, held=window.held, since=window.since)
            elif now >= window.until:
                del self._windows[key]

    def _send(self, payload: dict, now: float, held: int = 0, since: float | None = None) -> None:
        title, body = compose(payload, now=now, tz=self.tz, dashboard_url=self.dashboard_url, held=held,
                              since=since, late_after_s=self.late_after_s)
        self._sender.send(title, body, station=payload["station_id"], tag=payload["tag"],
                          event_id=payload["event_id"], held=held)


def send_test_alerts(config: Path) -> int:
    """``station alerts test --config FILE``: one test message to every URL; 0 when all were delivered."""
    cfg = load_collector_config(config)
    alerter = Alerter.from_config(cfg.alerts, source=str(config), timezone=cfg.http.timezone)
    if not alerter.targets:
        print(f"{config}: no alert URLs configured (alerts.urls, alerts.urls_file)")
        return 2
    results = alerter.send_test()
    for target, ok in results:
        print(f"  {target.key}: {target.service}: {'OK' if ok else 'FAILED'}")
    return 0 if all(ok for _, ok in results) else 1
