"""An MQTT broker inside this Python process, for the demo where Mosquitto is not installed.

    broker = EmbeddedBroker().start()     # 127.0.0.1 on a free port, anonymous
    broker.host, broker.port
    broker.stop()

It runs amqtt (MIT, pure Python; the ``demo`` extra) on its own event loop in a
background thread. It speaks MQTT 3.1.1 only, so demo clients use ``protocol = "3.1.1"``,
and it is a demo broker: it does not keep messages for disconnected clients reliably, has
no ACLs and no TLS here. Stations and collectors in the field use Mosquitto
(deploy/mosquitto/).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from station.feed.broker_process import BrokerError, free_port

PROTOCOL = "3.1.1"


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._started = threading.Event()

    def start(self, timeout: float = 10.0) -> "EmbeddedBroker":
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise BrokerError("no MQTT broker: install Mosquitto (apt install mosquitto) or the demo's "
                              "embedded broker (pip install 'camtrap-station[demo]')") from None
        for name in ("amqtt", "transitions"):  # its per-connection chatter is not ours to show
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported by start()
                self._error = exc
                self._started.set()
                return
            self._started.set()
            loop.run_forever()
            loop.run_until_complete(self._broker.shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            raise BrokerError(f"embedded broker on {self.host}:{self.port} did not start: {self._error!r}")
        return self  # Broker.start() returns once its listener is bound

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
