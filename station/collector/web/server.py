"""Serves the app with uvicorn on a background thread, beside the collector's ingest.

    server = HttpServer.from_config(cfg, stats=ingest.stats)
    server.start()          # returns once it listens; raises if the port cannot be had
    server.port             # the bound port, also with [http] port = 0
    server.stop()

The socket is bound here, in the caller's thread, so "address already in use" is an
error the caller sees at start-up. uvicorn installs no signal handlers off the main
thread, and the main thread (the collector's) owns the signals.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable

import uvicorn
from starlette.types import ASGIApp

from station.config.collector import CollectorConfig
from station.log import get_logger

log = get_logger("collector.http")


class HttpServerError(RuntimeError):
    """The server could not start (the address is taken, the app failed to start)."""


class HttpServer:
    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0):
        self.app, self.host, self.requested_port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @classmethod
    def from_config(cls, cfg: CollectorConfig, *, stats: Callable[[], dict] | None = None) -> HttpServer:
        from station.collector.web.app import create_app
        return cls(create_app(cfg, stats=stats), host=cfg.http.host, port=cfg.http.port)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)
        return f"http://{host}:{self.port}"

    def _bind(self) -> socket.socket:
        sock = None
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
            # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say
            # so, and without it every answer waits 40 ms for a delayed ACK.
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise HttpServerError(f"http: cannot listen on {self.host}:{self.requested_port}: "
                                  f"{exc.strerror or exc}") from None
        return sock

    def start(self, timeout_s: float = 10.0) -> None:
        if self._thread is not None:
            raise HttpServerError("http: the server is already running")
        self._socket = self._bind()
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="on",
                                server_header=False, timeout_graceful_shutdown=5)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                        name="collector-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise HttpServerError(f"http: the server on {self.host}:{self.port} did not start "
                                      f"(see the log above)")
            time.sleep(0.01)
        log.info("dashboard and API listening", url=self.url)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("http server did not stop in time", timeout_s=timeout_s)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
