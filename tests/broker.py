"""A real Mosquitto for the feed tests, started by the tests themselves.

Each broker has its own folder, config, free port and persistence; the system broker
on 1883 is never touched. Without a mosquitto binary the tests that need one are
skipped, saying why. TLS material (a CA, a server certificate for 127.0.0.1 and
localhost, a client certificate, and a second, unrelated CA) is made with the
``openssl`` command line, once per test session.

Fixtures (import them into a test module with ``from tests.broker import *``):
``broker`` (anonymous, started), ``tls_files``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.feed.broker_process import BrokerTls, Mosquitto, find_mosquitto

__all__ = ["Mosquitto", "BrokerTls", "TlsFiles", "Subscriber", "make_broker", "make_tls_files",
           "make_password_file", "broker", "tls_files", "require_mosquitto"]


def require_mosquitto() -> str:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("no mosquitto binary (apt install mosquitto); the feed tests need a real broker")
    return binary


def make_broker(workdir: Path, **kwargs) -> Mosquitto:
    return Mosquitto(workdir, binary=require_mosquitto(), **kwargs)


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("no mosquitto_passwd binary (part of the mosquitto package)")
    first = True
    for user, password in users.items():
        args = [tool, "-b"] + (["-c"] if first else []) + [str(path), user, password]
        subprocess.run(args, check=True, capture_output=True)
        first = False
    return path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_key: Path

    def broker_side(self, require_certificate: bool = False) -> BrokerTls:
        return BrokerTls(self.ca, self.server_cert, self.server_key, require_certificate)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(folder: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)


def _leaf(folder: Path, name: str, ca: str, ext: str) -> None:
    (folder / f"{name}.ext").write_text(ext + "\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "3", "-extfile", f"{name}.ext", cwd=folder)


def make_tls_files(folder: Path) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command line tool to make test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    _ca(folder, "ca")
    _ca(folder, "other-ca")
    _leaf(folder, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth")
    _leaf(folder, "client", "ca", "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth")
    _leaf(folder, "other-client", "other-ca", "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth")
    return TlsFiles(folder / "ca.crt", folder / "ca.key", folder / "server.crt", folder / "server.key",
                    folder / "client.crt", folder / "client.key", folder / "other-ca.crt",
                    folder / "other-client.key")


class Subscriber:
    """A paho subscriber with a persistent session, collecting what arrives."""

    def __init__(self, broker: Mosquitto, topics: list[str], client_id: str = "test-subscriber"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.topics = topics
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, 30, clean_start=False, properties=props)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("subscriber did not subscribe")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self._arrived:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._arrived.notify_all()

    def payloads(self, topic: str | None = None) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if topic is None or t == topic]

    def wait_for(self, predicate, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not predicate([p for _, p, _ in self.messages]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrived.wait(remaining)
            return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path):
    b = make_broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))
