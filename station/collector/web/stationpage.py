"""The station page and its API: timeline, effort, battery and temperature, problems, and
"a picture now" (docs/collector-api.md#the-station-page).

    GET  /stations/{id}                               the page (station.html)
    GET  /api/stations/{id}                           the station, its problems now, its alert rows
    GET  /api/stations/{id}/health?since&until        timeline, effort, plotted figures (default: 7 days)
    GET  /api/effort?since&until&station              camera-days and downtime of every station
    POST /api/stations/{id}/snapshots                 ask the station for a picture (a token is needed)
    GET  /api/stations/{id}/snapshots/{request_id}    what became of it

Handlers take (request, db, exact) and run behind :meth:`_Api.guarded` (tokens, errors).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from station import times
from station.collector.db import Database
from station.collector.fieldhealth import chart_series, station_facts, station_record
from station.collector.privacy import LocationPolicy
from station.collector.station_rules import RuleSettings, judge
from station.collector.stored import station_row
from station.collector.web import params as p
from station.collector.web.views import station_item, thumbnail_url
from station.config.collector import CollectorConfig
from station.log import get_logger

log = get_logger("collector.http")
DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=400)
MAX_STATIONS_EFFORT = 500


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


class StationPages:
    def __init__(self, cfg: CollectorConfig, snapshots: Any | None, clock: Callable[[], float] | None = None):
        self.cfg, self.snapshots = cfg, snapshots
        self.policy = LocationPolicy(cfg.privacy)
        self.settings = RuleSettings.from_config(cfg.alerts)
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.now(timezone.utc) if self._clock is None else \
            datetime.fromtimestamp(self._clock(), timezone.utc)

    def _window(self, request: Request, extra: dict[str, p.Parser] | None = None) -> dict[str, Any]:
        q = p.parse(request.query_params, {"since": p.time, "until": p.time} | (extra or {}))
        until = q["until"] or self._now()
        since = q["since"] or until - DEFAULT_WINDOW
        if until - since > MAX_WINDOW:
            raise p.BadParameter("since", f"the window is at most {MAX_WINDOW.days} days")
        if until <= since:
            raise p.BadParameter("until", "must be later than since")
        return q | {"since": since, "until": until}

    @staticmethod
    def _station(db: Database, station_id: str) -> dict[str, Any] | None:
        if len(station_id) > 64:
            return None
        return next((r for r in db.stations() if r["station_id"] == station_id), None)

    # -- GET /api/stations/{id} ------------------------------------------------------

    def station(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        sid = request.path_params["station_id"]
        raw = self._station(db, sid)
        if raw is None:
            return _error(404, f"no station {sid[:64]!r}")
        now = self._now()
        row, problems = station_row(raw)
        sensitive = set() if exact else self.policy.sensitive_stations(db)
        item = station_item(row, self.policy, exact=exact, sensitive=sensitive, now=now)
        facts = station_facts(db, now, self.settings, station=sid)
        verdict = judge(facts[0], self.settings, now=now, listening_since=now - timedelta(days=3650)) \
            if facts else None
        alerts = [{"rule": a["rule"], "active": bool(a["active"]), "since": times.format(a["since"]),
                   "detail": a["detail"], "notified_at": times.format(a["notified_at"]) if a["notified_at"] else None}
                  for a in db.alert_states() if a["station_id"] == sid]
        readings = facts[0].readings if facts else None
        return JSONResponse({
            "location_generalised": not exact, "item": item,
            "problems": [{"rule": c.rule, "detail": c.detail} for c in verdict.conditions.values()] if verdict else [],
            "interval_s": round(verdict.interval_s, 1) if verdict else None,
            "silent_after_s": round(verdict.silent_after_s, 1) if verdict else None,
            "power": None if readings is None else {
                "battery_v": readings.battery_v, "battery_low": readings.battery_low,
                "undervoltage": readings.undervoltage, "throttled": readings.throttled,
                "wh_per_day": readings.wh_per_day},
            "alerts": alerts, "implausible": db.implausible_heartbeats(sid),
            "snapshots": self.snapshots is not None,
            "skipped": [sid] if problems else []})

    # -- GET /api/stations/{id}/health -------------------------------------------------

    def health(self, request: Request, db: Database, exact: bool) -> Response:
        q = self._window(request)
        sid = request.path_params["station_id"]
        if self._station(db, sid) is None:
            return _error(404, f"no station {sid[:64]!r}")
        record = station_record(db, sid, since=q["since"], until=q["until"], now=self._now(), settings=self.settings)
        return JSONResponse({
            "station_id": sid, "since": times.format(q["since"]), "until": times.format(q["until"]),
            "interval_s": round(record.interval_s, 1), "silent_after_s": round(record.silent_after_s, 1),
            "timeline": [s.as_dict() for s in record.timeline],
            "effort": record.effort.as_dict() if record.effort else None,
            "series": chart_series(record.beats), "heartbeats": len(record.beats),
            "implausible": sum(1 for b in record.beats if b.get("implausible"))})

    # -- GET /api/effort ---------------------------------------------------------------

    def effort(self, request: Request, db: Database, exact: bool) -> Response:
        q = self._window(request, {"station": p.text})
        now = self._now()
        ids = [r["station_id"] for r in db.stations() if q["station"] in (None, r["station_id"])]
        items = []
        for sid in ids[:MAX_STATIONS_EFFORT]:
            record = station_record(db, sid, since=q["since"], until=q["until"], now=now, settings=self.settings)
            items.append({"station_id": sid, "interval_s": round(record.interval_s, 1),
                          **(record.effort.as_dict() if record.effort else {})})
        return JSONResponse({"since": times.format(q["since"]), "until": times.format(q["until"]), "items": items})

    # -- snapshots -----------------------------------------------------------------

    def request_snapshot(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        sid = request.path_params["station_id"]
        if not exact:
            return JSONResponse({"error": "asking a station for a picture needs a token (Authorization: Bearer TOKEN)",
                                 "status": 401}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="camtrap-collector"'})
        if self.snapshots is None:
            return _error(503, "this collector does not talk to the broker (the API runs without the ingest)")
        if self._station(db, sid) is None:
            return _error(404, f"no station {sid[:64]!r}")
        status = self.snapshots.request(db, sid, requested_by=f"dashboard of collector {self.cfg.collector.id}")
        return JSONResponse(self._snapshot_view(status), status_code=202)

    def snapshot(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        sid, request_id = request.path_params["station_id"], request.path_params["request_id"]
        if self.snapshots is None:
            return _error(503, "this collector does not talk to the broker (the API runs without the ingest)")
        try:
            status = self.snapshots.status(db, request_id[:80])
        except KeyError:
            return _error(404, f"no snapshot request {request_id[:80]!r}")
        if status["station_id"] != sid:
            return _error(404, f"no snapshot request {request_id[:80]!r} for station {sid[:64]!r}")
        return JSONResponse(self._snapshot_view(status))

    @staticmethod
    def _snapshot_view(status: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in status.items() if k != "has_thumbnail"}
        out["thumbnail_url"] = thumbnail_url(status["event_id"]) if status.get("has_thumbnail") else None
        return out
