"""systemd's sd_notify protocol, without a dependency: one datagram to ``$NOTIFY_SOCKET``.

    notifier = Notifier.from_environment()   # a no-op when systemd did not ask (tests, a shell)
    notifier.ready("capturing")              # Type=notify: start-up is complete
    notifier.keepalive(lambda: "12 events")  # from the loop that must not hang: WATCHDOG=1 when due
    notifier.stopping()

The socket is a path (``/run/systemd/notify``) or, with a leading ``@``, a name in the
abstract namespace. ``$WATCHDOG_USEC`` (with ``WatchdogSec=``) is the interval after
which systemd kills a service that has not sent ``WATCHDOG=1``; we send it at half of
that, as sd_watchdog_enabled(3) advises, and only when ``$WATCHDOG_PID`` (if set) is
this process. A failed send is logged once and never raised: the service's work comes
first, and a watchdog that is not fed restarts the service anyway.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable, Mapping

from station.log import get_logger

log = get_logger("sdnotify")

STATUS_INTERVAL_S = 10.0
"""``keepalive`` refreshes STATUS= at most this often (and with every watchdog ping)."""
STATUS_MAX_CHARS = 200


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None):
        self.address = address
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        self._last_ping = float("-inf")
        self._last_status = float("-inf")
        self.sent: int = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, pid: int | None = None) -> "Notifier":
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            log.warning("NOTIFY_SOCKET is neither a path nor an abstract socket; not notifying systemd",
                        notify_socket=address)
            address = None
        watchdog = None
        usec, owner = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        if usec:
            try:
                watchdog = int(usec)
                if owner and int(owner) != (os.getpid() if pid is None else pid):
                    watchdog = None  # meant for another process (we were started by it)
            except ValueError:
                log.warning("WATCHDOG_USEC or WATCHDOG_PID is not a number; no watchdog pings",
                            watchdog_usec=usec, watchdog_pid=owner)
                watchdog = None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """systemd's WatchdogSec, when it applies to this process and a socket is there to ping."""
        return self.watchdog_usec / 1e6 if self.enabled and self.watchdog_usec else None

    @property
    def ping_interval_s(self) -> float | None:
        interval = self.watchdog_interval_s
        return None if interval is None else interval / 2

    # -- the messages -----------------------------------------------------------------------
    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when not sent (disabled or failed)."""
        if self.address is None or not fields:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        data = "\n".join(fields).encode("utf-8", errors="replace")
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.sendto(data, target)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    log.warning("cannot notify systemd (further failures are not logged)",
                                notify_socket=self.address, error=str(exc))
                return False
            self.sent += 1
            return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def reloading(self) -> bool:
        """Before re-reading the config; send :meth:`ready` when done. MONOTONIC_USEC is what
        systemd 253+ wants for Type=notify-reload; older versions ignore it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        self._last_ping = time.monotonic()
        return self.notify("WATCHDOG=1")

    def keepalive(self, status: Callable[[], str] | None = None, now: float | None = None) -> bool:
        """Called from the loop whose progress proves the service is alive, as often as it
        likes: sends WATCHDOG=1 when half the interval has passed, and STATUS= now and then.
        True when a watchdog ping went out."""
        if self.address is None:
            return False
        now = time.monotonic() if now is None else now
        fields: list[str] = []
        ping = self.ping_interval_s
        if ping is not None and now - self._last_ping >= ping:
            self._last_ping = now
            fields.append("WATCHDOG=1")
        if status is not None and (fields or now - self._last_status >= STATUS_INTERVAL_S):
            self._last_status = now
            fields.extend(_status(status()))
        return self.notify(*fields) and "WATCHDOG=1" in fields

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _status(text: str | None) -> list[str]:
    if not text:
        return []
    line = " ".join(text.split())[:STATUS_MAX_CHARS]
    return [f"STATUS={line}"]


NULL = Notifier(None)
"""Notifies nobody: the default wherever a notifier is not handed in."""
