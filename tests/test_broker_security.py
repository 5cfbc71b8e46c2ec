"""The shipped broker configuration, attacked: a real Mosquitto runs deploy/mosquitto/camtrap.conf.

The broker is set up as on a Debian server: Debian's main mosquitto.conf with its
``include_dir``, the shipped drop-in in ``conf.d`` (only its paths and ports moved into a
temporary folder), the shipped ACL, and accounts made by ``station provision``. Then
stations, a researcher, the collector, an operator and strangers try what they may and
may not do. Every "nothing arrived" is checked against a marker sent after the forbidden
message, so a test cannot pass by looking too early.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.cli import main as station_cli
from station.config import load_config
from station.feed.outbox import Outbox
from station.feed.publisher import Publisher
from station.feed.topics import Topics
from tests.broker import BrokerTls, Mosquitto, TlsFiles, require_mosquitto, tls_files  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "camtrap.conf"
SHIPPED_ACL = ROOT / "deploy" / "mosquitto" / "acl"

STATION_A, STATION_B = "lazovsky-07", "kedrovaya-02"
A, B = Topics(STATION_A), Topics(STATION_B)

# Debian 12's /etc/mosquitto/mosquitto.conf, its paths moved into the test's folder.
DEBIAN_MAIN_CONF = """\
pid_file {dir}/mosquitto.pid
persistence true
persistence_location {dir}/persist/
log_dest file {dir}/mosquitto.log
include_dir {dir}/conf.d
"""


def deployed_conf(shipped: str, broker_dir: Path, tls_port: int, plain_port: int) -> str:
    """The shipped drop-in with its file paths and listener ports moved; nothing else changes."""
    moves = [("/etc/mosquitto/camtrap/", f"{broker_dir}/"),
             ("\nlistener 8883\n", f"\nlistener {tls_port} 127.0.0.1\n"),
             ("\nlistener 1883 127.0.0.1\n", f"\nlistener {plain_port} 127.0.0.1\n")]
    for old, new in moves:
        assert old in shipped, f"the shipped camtrap.conf no longer has {old!r}: update this test"
        shipped = shipped.replace(old, new)
    lines = [line for line in shipped.splitlines() if not line.startswith("#")]
    assert not any(re.search(r"(^|\s)/etc/", line) for line in lines), "a path in camtrap.conf was not moved"
    return shipped


class DeployedMosquitto(Mosquitto):
    """Mosquitto started as Debian does it, with the shipped drop-in (see the module docstring)."""

    def __init__(self, workdir: Path, broker_dir: Path):
        self.broker_dir = broker_dir
        super().__init__(workdir, binary=require_mosquitto(),
                         tls=BrokerTls(broker_dir / "ca.crt", broker_dir / "server.crt", broker_dir / "server.key"))

    def _config(self, allow_anonymous: bool, password_file: Path | None, extra: str) -> str:
        conf_d = self.workdir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        (conf_d / "camtrap.conf").write_text(
            deployed_conf(SHIPPED_CONF.read_text(), self.broker_dir, self.tls_port, self.port))
        main = DEBIAN_MAIN_CONF.format(dir=self.workdir)
        if os.geteuid() == 0:  # as broker_process.py: the mosquitto user cannot read the test's files
            main = "user root\n" + main
        return main

    def reload(self) -> None:
        """SIGHUP, as `systemctl reload mosquitto`: accounts and ACLs are read again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


def provision(broker_dir: Path, out: Path, name: str, *extra: str) -> str:
    """``station provision`` through the real CLI; returns the new account's password."""
    assert station_cli(["provision", name, "--broker-dir", str(broker_dir), "--out", str(out),
                        "--host", "127.0.0.1", *extra]) == 0
    files = sorted(p for p in out.iterdir() if p.name.endswith("password"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    return files[0].read_text().strip()


class Deployment:
    """The broker and every account: ``passwords[name]``."""

    def __init__(self, broker: DeployedMosquitto, broker_dir: Path, bundles: Path, tls: TlsFiles):
        self.broker, self.broker_dir, self.bundles, self.tls = broker, broker_dir, bundles, tls
        self.passwords: dict[str, str] = {}

    def add(self, name: str, *args: str) -> None:
        self.passwords[name] = provision(self.broker_dir, self.bundles / name, name, *args)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, tls_files: TlsFiles):  # noqa: F811
    base = tmp_path_factory.mktemp("deployed")
    broker_dir = base / "etc-mosquitto-camtrap"
    broker_dir.mkdir()
    for src, name in ((tls_files.ca, "ca.crt"), (tls_files.server_cert, "server.crt"),
                      (tls_files.server_key, "server.key")):
        shutil.copy(src, broker_dir / name)
    shutil.copy(SHIPPED_ACL, broker_dir / "acl")
    broker = DeployedMosquitto(base / "broker", broker_dir)
    dep = Deployment(broker, broker_dir, base / "bundles", tls_files)
    dep.add(STATION_A, "--latitude", "43.24", "--longitude", "133.89")
    dep.add(STATION_B)
    dep.add("anna", "--role", "researcher")
    dep.add("collector", "--role", "collector")
    dep.add("ivan", "--role", "operator")
    broker.start()
    yield dep
    broker.stop()


class Client:
    """One MQTT 5 connection, and everything the broker answered on it."""

    def __init__(self, dep: Deployment, user: str | None, password: str | None = None, *,
                 client_id: str | None = None, tls_ca: Path | None = None, session: bool = False,
                 subscribe: tuple[str, ...] = ()):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connack = None
        self.subacks: dict[int, list] = {}
        self.pubacks: dict[int, object] = {}
        self._cond = threading.Condition()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{user}-{time.monotonic_ns()}",
                             protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, dep.passwords.get(user) if password is None else password)
        if tls_ca is not None:
            self.c.tls_set(ca_certs=str(tls_ca))
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda c, u, mid, codes, p: self._note(self.subacks, mid, codes)
        self.c.on_publish = lambda c, u, mid, code, p: self._note(self.pubacks, mid, code)
        self.c.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if session else 0
        port = dep.broker.tls_port if tls_ca is not None else dep.broker.port
        self.c.connect(dep.broker.host, port, 30, clean_start=not session, properties=props)
        self.c.loop_start()
        with self._cond:
            assert self._cond.wait_for(lambda: self.connack is not None, 10), "no CONNACK"
        for topic in subscribe:
            self.subscribe(topic)

    def _note(self, table: dict, mid: int, value) -> None:
        with self._cond:
            table[mid] = value
            self._cond.notify_all()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        with self._cond:
            self.connack = reason
            self.session_present = flags.session_present
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    @property
    def refused(self) -> bool:
        return self.connack.is_failure

    def subscribe(self, topic: str) -> list:
        _, mid = self.c.subscribe(topic, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self.subacks, 10), f"no SUBACK for {topic}"
            return self.subacks[mid]

    def publish(self, topic: str, payload: bytes | str, retain: bool = False):
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self.pubacks, 10), f"no PUBACK for {topic}"
            return self.pubacks[info.mid]

    def wait_for(self, topic: str, payload: bytes, timeout: float = 10) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: (topic, payload) in self.received(), timeout)

    def received(self) -> list[tuple[str, bytes]]:
        return [(t, p) for t, p, _ in self.messages]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients():
    made: list[Client] = []

    def connect(*args, **kwargs) -> Client:
        client = Client(*args, **kwargs)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


def denied(code) -> bool:
    return code.is_failure and code.getName() == "Not authorized"


def accepted(code) -> bool:  # "No matching subscribers" is a success code too
    return not code.is_failure


def payload(tag: str) -> bytes:
    return json.dumps({"test": tag, "n": time.monotonic_ns()}).encode()


# -- who may connect ---------------------------------------------------------------------------
def test_anonymous_clients_are_refused_on_both_listeners(deployment, clients):
    plain = clients(deployment, None)
    over_tls = clients(deployment, None, tls_ca=deployment.tls.ca)
    assert plain.refused and plain.connack.getName() == "Not authorized"
    assert over_tls.refused and over_tls.connack.getName() == "Not authorized"


def test_a_wrong_password_or_an_unknown_user_is_refused(deployment, clients):
    wrong = clients(deployment, STATION_A, deployment.passwords[STATION_B])
    stranger = clients(deployment, "poacher", "leopard")
    for client in (wrong, stranger):  # Mosquitto 2.0.11 answers "Not authorized"; later ones 0x86
        assert client.refused and client.connack.getName() in ("Not authorized", "Bad user name or password")


def test_the_tls_listener_serves_clients_that_trust_its_ca_and_no_others(deployment, clients):
    station = clients(deployment, STATION_A, tls_ca=deployment.tls.ca)
    assert not station.refused
    assert accepted(station.publish(A.health, payload("over tls")))
    with pytest.raises(ssl.SSLCertVerificationError):
        clients(deployment, STATION_A, tls_ca=deployment.tls.other_ca)


# -- stations ----------------------------------------------------------------------------------
def test_a_station_publishes_its_own_feed_and_reads_its_own_commands(deployment, clients):
    collector = clients(deployment, "collector", subscribe=("camtrap/v1/+/detection", "camtrap/v1/+/thumbnail"))
    operator = clients(deployment, "ivan", subscribe=("camtrap/v1/+/command_result",))
    station = clients(deployment, STATION_A, subscribe=(A.commands,))
    detection, thumbnail, result = payload("detection"), b"x" * 350_000, payload("result")  # ~ the largest thumbnail/1
    for topic, body in ((A.detection, detection), (A.thumbnail, thumbnail), (A.health, payload("health")),
                        (A.status, payload("status")), (A.command_result, result)):
        assert accepted(station.publish(topic, body)), topic
    assert collector.wait_for(A.detection, detection) and collector.wait_for(A.thumbnail, thumbnail)
    assert operator.wait_for(A.command_result, result)
    command = payload("snapshot")
    assert accepted(operator.publish(A.command("snapshot"), command))
    assert station.wait_for(A.command("snapshot"), command)


def test_a_station_cannot_publish_as_another_station(deployment, clients):
    watcher = clients(deployment, "collector", subscribe=("camtrap/v1/#",))
    b = clients(deployment, STATION_B)
    true_status = payload("b is online")
    assert accepted(b.publish(B.status, true_status, retain=True))
    a = clients(deployment, STATION_A)
    forged = payload("forged")
    for topic in (B.detection, B.thumbnail, B.health, B.command_result, B.command("snapshot")):
        assert denied(a.publish(topic, forged)), topic
    assert denied(a.publish(B.status, forged, retain=True))
    marker = payload("marker")
    assert accepted(b.publish(B.detection, marker))
    assert watcher.wait_for(B.detection, marker)
    assert all(p != forged for _, p in watcher.received())
    late = clients(deployment, "anna", subscribe=(B.status,))  # the retained status is still B's own
    assert late.wait_for(B.status, true_status)
    assert all(p != forged for _, p in late.received())


def test_a_station_cannot_read_another_stations_commands(deployment, clients):
    # Mosquitto 2.0 grants every SUBSCRIBE and checks read access per message as it delivers.
    a = clients(deployment, STATION_A)
    for topic in (B.commands, "camtrap/v1/+/command/+", "#"):
        a.subscribe(topic)
    b = clients(deployment, STATION_B, subscribe=(B.commands,))
    operator = clients(deployment, "ivan")
    for_b, for_a = payload("for b"), payload("for a")
    assert accepted(operator.publish(B.command("reload"), for_b))
    assert accepted(operator.publish(A.command("reload"), for_a))
    assert b.wait_for(B.command("reload"), for_b)
    assert a.wait_for(A.command("reload"), for_a)
    assert {t for t, _ in a.received()} == {A.command("reload")}


def test_a_station_taking_another_stations_client_id_gets_none_of_its_commands(deployment, clients):
    b = clients(deployment, STATION_B, client_id="session-of-b", session=True, subscribe=(B.commands,))
    b.close()
    operator = clients(deployment, "ivan")
    waiting = payload("queued for b")
    assert accepted(operator.publish(B.command("snapshot"), waiting))
    a = clients(deployment, STATION_A, client_id="session-of-b", session=True)
    assert a.session_present  # Mosquitto hands the session over: acl_file cannot bind ids to users
    a.subscribe(A.commands)
    marker = payload("for a")
    assert accepted(operator.publish(A.command("snapshot"), marker))
    assert a.wait_for(A.command("snapshot"), marker)
    assert (B.command("snapshot"), waiting) not in a.received()


# -- researchers, the collector, operators ---------------------------------------------------------
def test_a_researcher_reads_every_stations_feed_but_cannot_publish(deployment, clients):
    anna = clients(deployment, "anna", subscribe=("camtrap/v1/+/detection", "#"))
    operator = clients(deployment, "ivan")
    a = clients(deployment, STATION_A, subscribe=(A.commands,))
    collector = clients(deployment, "collector", subscribe=("camtrap/v1/+/detection",))
    forged = payload("anna's")
    # Her own name as a station id too: the station patterns match every user name.
    for topic in (A.detection, A.status, "camtrap/v1/anna/detection", "camtrap/v1/anna/status",
                  A.command("snapshot")):
        assert denied(anna.publish(topic, forged)), topic
    command = payload("command")
    assert accepted(operator.publish(A.command("snapshot"), command))
    assert a.wait_for(A.command("snapshot"), command)
    detection = payload("detection")
    assert accepted(a.publish(A.detection, detection))
    assert anna.wait_for(A.detection, detection) and collector.wait_for(A.detection, detection)
    assert all(p != forged for _, p in collector.received() + anna.received())
    assert not any("/command" in t for t, _ in anna.received())  # '#' brings her the feed, never commands


def test_collectors_share_detections_through_a_shared_subscription(deployment, clients):
    shared = "$share/collectors/camtrap/v1/+/detection"
    one = clients(deployment, "collector", client_id="camtrap-collector-one")
    two = clients(deployment, "collector", client_id="camtrap-collector-two")
    assert [code.getName() for code in one.subscribe(shared) + two.subscribe(shared)] == ["Granted QoS 1"] * 2
    station = clients(deployment, STATION_B)
    sent = [payload(f"shared {n}") for n in range(20)]
    for body in sent:
        assert accepted(station.publish(B.detection, body))
    deadline = time.monotonic() + 10
    while len(one.received()) + len(two.received()) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    got = [p for _, p in one.received() + two.received()]
    assert sorted(got) == sorted(sent)  # each exactly once, between the two
    assert one.received() and two.received()
    assert denied(one.publish(B.detection, payload("collector")))


def test_an_operator_sends_commands_but_cannot_forge_the_feed(deployment, clients):
    ivan = clients(deployment, "ivan", subscribe=("camtrap/v1/+/status",))
    station = clients(deployment, STATION_A)
    status = payload("online")
    assert accepted(station.publish(A.status, status, retain=True))
    assert ivan.wait_for(A.status, status)
    for topic in (A.detection, A.status, A.thumbnail, "camtrap/v1/ivan/detection"):
        assert denied(ivan.publish(topic, payload("ivan"))), topic
    assert accepted(ivan.publish(B.command("reload"), payload("reload")))


# -- provisioning while the broker runs ------------------------------------------------------------
def test_a_station_provisioned_while_the_broker_runs_connects_after_a_reload(deployment, clients):
    deployment.add("ussuri-03", "--latitude", "44.1", "--longitude", "134.2")
    before = clients(deployment, "ussuri-03")
    assert before.refused  # the broker has not read the new password file yet
    deployment.broker.reload()
    deadline = time.monotonic() + 10
    while (after := clients(deployment, "ussuri-03", tls_ca=deployment.tls.ca)).refused:
        assert time.monotonic() < deadline, "the new account was not accepted after a reload"
        time.sleep(0.1)  # the broker reads the files in its next loop
    # Accepted: the hash station provision wrote in Python is one Mosquitto checks.
    assert accepted(after.publish(Topics("ussuri-03").detection, payload("new station")))
    assert denied(after.publish(A.detection, payload("new station")))


def test_a_station_runs_its_feed_from_the_provisioned_bundle_over_tls(deployment, clients, tmp_path):
    """The files `station provision` made, read by the station's own config loader and publisher."""
    bundle = deployment.bundles / STATION_A
    station_toml = tmp_path / "station.toml"  # on the Pi they live in /etc/station; here in the bundle
    station_toml.write_text((bundle / "station.toml").read_text().replace("/etc/station/", f"{bundle}/")
                            .replace("port = 8883", f"port = {deployment.broker.tls_port}"))
    cfg = load_config(station_toml, {"storage": {"data_dir": str(tmp_path / "data")}})
    assert cfg.mqtt.tls and cfg.mqtt.username == STATION_A and cfg.mqtt.ca_file == bundle / "ca.crt"
    collector = clients(deployment, "collector", subscribe=("camtrap/v1/+/detection",))
    operator = clients(deployment, "ivan")
    commands: list[bytes] = []
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1 << 20)
    publisher = Publisher(cfg.mqtt, cfg.station.id, outbox, subscribe_topics=[A.commands],
                          on_command=lambda topic, body, retained: commands.append(body)).start()
    try:
        detection = payload("from the daemon's publisher")
        outbox.put(A.detection, detection, message_id="det-1")
        assert publisher.wait_delivered(15), publisher.last_error
        assert collector.wait_for(A.detection, detection)
        command = payload("snapshot")
        deadline = time.monotonic() + 10
        while command not in commands and time.monotonic() < deadline:  # the subscription follows the connect
            operator.publish(A.command("snapshot"), command)
            time.sleep(0.2)
        assert command in commands
    finally:
        publisher.stop(timeout=2)
        outbox.close()
