"""The collector's HTTP app: a JSON API and the researchers' dashboard.

    app = create_app(cfg, stats=ingest.stats)   # Starlette (ASGI); HttpServer runs it

Every route answers GET (and HEAD); two also take POST, each needing a token and a JSON
body: a researcher's verification of an event (``/api/detections/{event_id}/verifications``,
a named token, :mod:`station.collector.web.auth`) and asking a station for a picture
(``/api/stations/{id}/snapshots``). Without a token a view is public: stations are
generalised as ``[privacy]`` says; a valid ``Authorization: Bearer TOKEN`` gives the exact
view; a wrong token is refused (401) rather than quietly served the public view, and with
``[http] public = false`` every API request needs one. The token travels in a header, never
in a cookie, so another site cannot make a browser send it (no CSRF); no CORS header is
ever sent. Routes and parameters: docs/collector-api.md (and ``/api/openapi.json``).

A stored row that breaks the feed's rules (:mod:`station.collector.stored`) never breaks
an answer: it is left out and named (``skipped``), and asked for alone it is a 422.
"""

from __future__ import annotations

import functools
import hashlib
import json
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from station.collector import verification
from station.collector.db import MAX_LIMIT, Database, StorageError
from station.collector.privacy import LocationPolicy
from station.collector.stored import Skipped, detection_problem, station_row
from station.collector.thumbnails import clean_jpeg
from station.collector.web import params as p
from station.collector.web.auth import Forbidden, TokenFileError, Tokens, Unauthorized, Viewer
from station.collector.web.databases import Databases
from station.collector.web.openapi import openapi
from station.collector.web.stationpage import StationPages
from station.collector.web.views import detection_item, station_item
from station.config.collector import CollectorConfig
from station.feed.messages import ThumbnailError
from station.log import get_logger

TOTAL_CAP = 10_000
"""``total`` is exact up to this; above it the API says ``total_is_lower_bound`` (no full count)."""

log = get_logger("collector.http")
STATIC = Path(__file__).parent / "static"
THUMBNAIL_MAX_AGE_S = 7 * 86400  # a stored thumbnail never changes

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


class SecurityHeaders:
    """Adds the security headers to every response, and a Cache-Control to those without
    one: API answers are never stored (a restricted view must not linger in a cache)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(("/static/", "/stations/")) or scope["path"] == "/"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-cache" if static else "no-store"
                if not static:
                    headers.add_vary_header("Authorization")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status, headers=headers)


class _Api:
    """The route handlers; each runs on a worker thread with its own database connection."""

    def __init__(self, cfg: CollectorConfig, stats: Callable[[], dict] | None, databases: Databases):
        self.cfg, self.stats, self.databases = cfg, stats, databases
        self.tokens = Tokens(cfg.http.token_file)
        self.policy = LocationPolicy(cfg.privacy)
        self.thumbnails_dir = cfg.collector.thumbnails_dir.absolute()
        self._reported: set[str] = set()  # stored rows left out, already logged

    def _answer(self, request: Request, work: Callable[[], Response]) -> Response:
        """``work()``, with every error it raises turned into a JSON answer."""
        try:
            return work()
        except Unauthorized as exc:
            challenge = 'Bearer realm="camtrap-collector"' + (f', error="{exc.error}"' if exc.error else "")
            return _error(401, str(exc), {"WWW-Authenticate": challenge})
        except Forbidden as exc:
            return _error(403, str(exc))
        except p.BadParameter as exc:
            return _error(400, str(exc), parameter=exc.parameter)
        except verification.BadVerification as exc:
            return _error(400, str(exc), field=exc.field)
        except TokenFileError as exc:
            log.error("cannot check tokens", error=str(exc))
            return _error(503, "tokens cannot be checked right now; the collector's log says why")
        except StorageError as exc:
            log.error("database unavailable to the API", path=request.url.path, error=str(exc))
            return _error(503, f"database unavailable: {exc}")

    def _viewer(self, request: Request, write: bool = False) -> Viewer:
        return self.tokens.viewer(request.headers.get("authorization"), public=self.cfg.http.public, write=write)

    def guarded(self, handler: Callable[[Request, Database, bool], Response]) -> Callable[[Request], Response]:
        """A reading handler behind the token check, with a database; errors become JSON answers."""
        @functools.wraps(handler)
        def endpoint(request: Request) -> Response:
            def work() -> Response:
                exact = self._viewer(request).exact
                try:
                    with self.databases.connection() as db:
                        return handler(request, db, exact)
                except StorageError:
                    if not self.databases.pooled:
                        raise
                # A pooled connection may have died with its server (a restart): once more, on a
                # new one. Safe: the routes that read only read, and the two that write fail
                # first on a dead connection (nothing was stored to repeat).
                with self.databases.connection() as db:
                    return handler(request, db, exact)
            return self._answer(request, work)
        return endpoint

    def _sensitive(self, db: Database, exact: bool) -> set[str] | None:
        return set() if exact else self.policy.sensitive_stations(db)

    def _privacy(self, exact: bool) -> dict[str, Any]:
        return {"location_generalised": not exact, "grid_deg": None if exact else self.policy.grid_deg}

    def _report(self, skipped: Skipped) -> None:
        """Log each stored row left out once per process (the dashboard asks every 10 s)."""
        for row_id, why in skipped.rows:
            if row_id not in self._reported and len(self._reported) < 100_000:
                self._reported.add(row_id)
                log.warning("a stored row breaks the feed's rules and is left out of the API", id=row_id, problem=why)

    @staticmethod
    def _skipped(skipped: Skipped, exact: bool, key: str) -> dict[str, Any]:
        """``skipped``: the ids of stored rows left out; with a token also why (the reason may
        quote a value of the row)."""
        out: dict[str, Any] = {"skipped": skipped.ids}
        if exact:
            out["skipped_problems"] = [{key: i, "problem": why} for i, why in skipped.rows]
        return out

    # -- routes ---------------------------------------------------------------------

    DETECTION_FILTERS = {"station": p.text, "tag": p.tag, "species": p.text, "since": p.time, "until": p.time,
                         "verified": p.boolean}

    def detections(self, request: Request, db: Database, exact: bool) -> Response:
        q = p.parse(request.query_params, self.DETECTION_FILTERS | {"limit": p.integer(1, MAX_LIMIT),
                                                                    "offset": p.integer(0)},
                    {"limit": 50, "offset": 0})
        filters = {k: q[k] for k in self.DETECTION_FILTERS}
        rows = db.query_detections(**filters, limit=q["limit"], offset=q["offset"])
        total = db.count_detections(**filters, cap=TOTAL_CAP)
        sensitive = self._sensitive(db, exact)
        skipped, items = Skipped(), []
        for r in rows:
            problem = detection_problem(r)
            if problem is not None:
                skipped.add(r["event_id"], problem)
                continue
            items.append(detection_item(r, self.policy, exact=exact, sensitive=sensitive))
        self._report(skipped)
        return JSONResponse({**self._privacy(exact), "total": min(total, TOTAL_CAP),
                             "total_is_lower_bound": total > TOTAL_CAP, "limit": q["limit"], "offset": q["offset"],
                             "items": items, **self._skipped(skipped, exact, "event_id")})

    def detection(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        event_id = request.path_params["event_id"]
        row = db.detection(event_id) if len(event_id) <= 64 else None
        if row is None:
            return _error(404, f"no detection with event_id {event_id[:64]!r}")
        problem = detection_problem(row)
        if problem is not None:
            skipped = Skipped()
            skipped.add(event_id, problem)
            self._report(skipped)
            why = problem if exact else "send a token to see why"
            return _error(422, f"detection {event_id} is stored but breaks the feed's rules, so it is left out "
                               f"of the API and exports ({why})", event_id=event_id)
        item = detection_item(row, self.policy, exact=exact, sensitive=self._sensitive(db, exact))
        return JSONResponse({**self._privacy(exact), "item": item})

    def _stored_detection(self, db: Database, event_id: str) -> Response | dict[str, Any]:
        """The stored detection ``event_id``, or the 404/422 answer that says why not."""
        row = db.detection(event_id) if len(event_id) <= 64 else None
        if row is None:
            return _error(404, f"no detection with event_id {event_id[:64]!r}")
        problem = detection_problem(row)
        if problem is not None:
            return _error(422, f"detection {event_id} is stored but breaks the feed's rules, so it is left out "
                               f"of the API and exports and cannot be verified", event_id=event_id)
        return row

    def verification_history(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        event_id = request.path_params["event_id"]
        found = self._stored_detection(db, event_id)
        if isinstance(found, Response):
            return found
        history = db.verifications(event_id)
        return JSONResponse({"event_id": event_id, "machine": {"tag": found["tag"], "species": found["species"]},
                             "current": history[-1] if history else None, "items": history})

    def add_verification(self, request: Request, body: bytes) -> Response:
        """POST: a named token's verification of one event, appended to its history (201)."""
        def work() -> Response:
            viewer = self._viewer(request, write=True)
            p.parse(request.query_params, {})
            kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if kind != "application/json":
                return _error(415, f"Content-Type: send the verification as application/json (got {kind[:60]!r})")
            given = verification.parse(body)
            event_id = request.path_params["event_id"]
            with self.databases.connection() as db:
                found = self._stored_detection(db, event_id)
                if isinstance(found, Response):
                    return found
                stored = db.add_verification(event_id, given.tag, given.species, verified_by=str(viewer.name))
            log.info("event verified", id=event_id, machine=found["tag"], tag=given.tag, species=given.species,
                     by=viewer.name)
            location = f"/api/detections/{quote(event_id, safe='')}/verifications"
            return JSONResponse({"item": stored, "machine": {"tag": found["tag"], "species": found["species"]}},
                                status_code=201, headers={"Location": location})
        return self._answer(request, work)

    async def verifications(self, request: Request) -> Response:
        """GET the history of an event's verifications; POST a new one (a JSON body of at
        most :data:`verification.MAX_BODY_BYTES`, read before anything else is done)."""
        if request.method != "POST":
            return await run_in_threadpool(self.guarded(self.verification_history), request)
        limit = verification.MAX_BODY_BYTES
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return _error(413, f"the body is {declared} bytes; a verification is at most {limit}")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"the body is over {limit} bytes; a verification is at most {limit}")
        return await run_in_threadpool(self.add_verification, request, body)

    def confusion(self, request: Request, db: Database, exact: bool) -> Response:
        q = p.parse(request.query_params, {"station": p.text, "since": p.time, "until": p.time})
        return JSONResponse(verification.confusion(db.verified_pairs(**q)))

    def whoami(self, request: Request) -> Response:
        def work() -> Response:
            p.parse(request.query_params, {})
            viewer = self._viewer(request)
            return JSONResponse({"exact": viewer.exact, "name": viewer.name, "can_verify": viewer.name is not None})
        return self._answer(request, work)

    def stations(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        now, sensitive = datetime.now(timezone.utc), self._sensitive(db, exact)
        skipped, items = Skipped(), []
        for r in db.stations():
            row, problems = station_row(r)
            for problem in problems.values():
                skipped.add(row["station_id"], problem)
            items.append(station_item(row, self.policy, exact=exact, sensitive=sensitive, now=now))
        self._report(skipped)
        return JSONResponse({**self._privacy(exact), "items": items, **self._skipped(skipped, exact, "station_id")})

    def species(self, request: Request, db: Database, exact: bool) -> Response:
        q = p.parse(request.query_params, {"station": p.text, "since": p.time, "until": p.time})
        counts = db.counts_by_species(**q)
        return JSONResponse({"total": sum(counts.values()),
                             "items": [{"species": name, "count": n} for name, n in counts.items()],
                             "outside_window": db.count_outside_window(**q)})

    def diel(self, request: Request, db: Database, exact: bool) -> Response:
        q = p.parse(request.query_params, {"species": p.text, "station": p.text, "since": p.time, "until": p.time,
                                           "tz": p.time_zone}, {"tz": self.cfg.http.timezone})
        zone = q.pop("tz")
        by_species = db.diel_activity(zone, **q)
        return JSONResponse({"timezone": zone, "hours": list(range(24)),
                             "series": [{"species": name, "counts": counts, "total": sum(counts)}
                                        for name, counts in by_species.items()],
                             "outside_window": db.count_outside_window(**q)})

    def collector(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        rejections = db.rejections()
        if not exact:  # a refused message's detail may quote its payload
            rejections = [{k: v for k, v in r.items() if k != "last_detail"} for r in rejections]
        migrations = db.migrations()
        stats = None
        if self.stats is not None:
            try:  # the ingest's counters, read from another thread: never let them break the page
                stats = json.loads(json.dumps(self.stats(), default=str))
            except Exception as exc:  # noqa: BLE001 (reported, and the rest of the answer stands)
                log.warning("ingest counters unavailable", error=repr(exc))
                stats = {"error": f"counters unavailable: {exc}"}
        return JSONResponse({"stats": stats,
                             "database": {"engine": db.dialect.name,
                                          "schema_version": migrations[-1]["version"] if migrations else 0},
                             "rejections": rejections})

    def thumbnail(self, request: Request, db: Database, exact: bool) -> Response:
        p.parse(request.query_params, {})
        event_id = request.path_params["event_id"]
        row = db.thumbnail(event_id) if len(event_id) <= 64 else None
        if row is None:
            return _error(404, f"no thumbnail for event_id {event_id[:64]!r}")
        # The file name comes from the database (the collector made it), never from the URL.
        path = (self.thumbnails_dir / row["file"]).resolve()
        if not path.is_relative_to(self.thumbnails_dir.resolve()) or not path.is_file():
            log.warning("thumbnail file missing", id=event_id, file=row["file"])
            return _error(404, f"the thumbnail of event_id {event_id!r} is recorded but its file is missing")
        # The collector re-encodes what it stores; a file from before that is cleaned as it goes out.
        try:
            data = clean_jpeg(path.read_bytes())
        except ThumbnailError as exc:
            log.warning("thumbnail file unreadable", id=event_id, file=row["file"], error=str(exc))
            return _error(404, f"the thumbnail of event_id {event_id!r} cannot be read")
        scope = "public" if self.cfg.http.public else "private"
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"Cache-Control": f"{scope}, max-age={THUMBNAIL_MAX_AGE_S}, immutable", "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/jpeg", headers=headers)

    def healthz(self, request: Request) -> Response:
        try:
            with self.databases.connection() as db:
                migrations = db.migrations()
        except StorageError as exc:
            return JSONResponse({"ok": False, "error": f"database unavailable: {exc}"}, status_code=503)
        return JSONResponse({"ok": True, "schema_version": migrations[-1]["version"] if migrations else 0})

    def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi(public=self.cfg.http.public, timezone=self.cfg.http.timezone))


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    allowed = (exc.headers or {}).get("Allow", "GET, HEAD")
    read_only = "" if "POST" in allowed else (": this route is read-only (the routes that write are "
                                              "POST /api/detections/{event_id}/verifications and "
                                              "POST /api/stations/{id}/snapshots)")
    message = {404: f"no such page: {request.url.path}",
               405: f"method {request.method} not allowed (allowed: {allowed}){read_only}"}.get(
        exc.status_code, str(exc.detail))
    return _error(exc.status_code, message, dict(exc.headers or {}))


def create_app(cfg: CollectorConfig, *, stats: Callable[[], dict] | None = None,
               snapshots: Any | None = None, clock: Callable[[], float] | None = None) -> Starlette:
    """The API and dashboard over the database of ``cfg``; ``stats`` gives the ingest's live
    counters for ``/api/collector``; ``snapshots`` (a :class:`~station.collector.snapshots.SnapshotDesk`)
    takes the station page's picture requests (without it they are a 503); ``clock`` (tests)
    is the station page's "now". Raises :class:`TokenFileError` for an unreadable token
    file and ValueError for a private collector without one."""
    if not cfg.http.public and cfg.http.token_file is None:
        raise ValueError("http.public = false needs http.token_file: nobody could read the API")
    databases = Databases(cfg.collector.sqlite_resolved_url())
    api = _Api(cfg, stats, databases)

    pages = StationPages(cfg, snapshots, clock)

    def dashboard(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    def station_page(request: Request) -> Response:
        return FileResponse(STATIC / "station.html", media_type="text/html; charset=utf-8")

    def get(path: str, endpoint: Callable[..., Response]) -> Route:
        return Route(path, endpoint, methods=["GET"])

    routes = [
        get("/", dashboard),
        get("/healthz", api.healthz),
        get("/api/openapi.json", api.openapi),
        get("/api/detections", api.guarded(api.detections)),
        get("/api/detections/{event_id}", api.guarded(api.detection)),
        get("/api/stations", api.guarded(api.stations)),
        get("/api/species", api.guarded(api.species)),
        get("/api/diel", api.guarded(api.diel)),
        get("/api/collector", api.guarded(api.collector)),
        Route("/api/detections/{event_id}/verifications", api.verifications, methods=["GET", "POST"]),
        get("/api/verifications/confusion", api.guarded(api.confusion)),
        get("/api/whoami", api.whoami),
        get("/stations/{station_id}", station_page),
        get("/api/stations/{station_id}", api.guarded(pages.station)),
        get("/api/stations/{station_id}/health", api.guarded(pages.health)),
        get("/api/effort", api.guarded(pages.effort)),
        Route("/api/stations/{station_id}/snapshots", api.guarded(pages.request_snapshot), methods=["POST"]),
        get("/api/stations/{station_id}/snapshots/{request_id}", api.guarded(pages.snapshot)),
        get("/thumbnails/{event_id}.jpg", api.guarded(api.thumbnail)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            databases.close()

    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                     exception_handlers={HTTPException: _http_error}, lifespan=lifespan)
