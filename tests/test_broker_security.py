"""The shipped broker configuration, attacked: a real Mosquitto runs deploy/mosquitto/camtrap.conf.

The broker is set up as on a Debian server: Debian's main mosquitto.conf with its
``include_dir``, the shipped drop-in in ``conf.d`` (only its paths and ports moved into a
temporary folder), with its dynamic-security plugin, and accounts made by ``station
provision`` (the first ones into the plugin's file, later ones sent to the running broker).
Then stations, researchers, collectors (the real collector service too), an operator and
strangers try what they may and may not do. Every "nothing arrived" is checked against a
marker sent after the forbidden message, so a test cannot pass by looking too early.
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
from station.collector.privacy import generalise
from station.collector.service import CollectorService
from station.config import load_config
from station.config.collector import parse_collector_config
from station.feed.schema import validate_message
from station.feed.outbox import Outbox
from station.feed.publisher import Publisher
from station.feed.topics import Topics
from tests.broker import BrokerTls, Mosquitto, TlsFiles, require_mosquitto, tls_files  # noqa: F401 - fixture
from tests.collector_data import detection as detection_message

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "camtrap.conf"
PLUGIN = re.search(r"^plugin (\S+)$", SHIPPED_CONF.read_text(), flags=re.M).group(1)

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


def provision(broker_dir: Path, out: Path, name: str, *extra: str, control_port: int | None = None) -> str:
    """``station provision`` through the real CLI; returns the new account's password. With
    ``control_port``, a running broker there takes the change; without, only the file is written."""
    where = ["--control-port", str(control_port)] if control_port else ["--offline"]
    assert station_cli(["provision", name, "--broker-dir", str(broker_dir), "--out", str(out),
                        "--host", "127.0.0.1", *where, *extra]) == 0
    files = sorted(p for p in out.iterdir() if p.name.endswith("password"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    return files[0].read_text().strip()


class Deployment:
    """The broker and every account: ``passwords[name]``."""

    def __init__(self, broker: DeployedMosquitto, broker_dir: Path, bundles: Path, tls: TlsFiles):
        self.broker, self.broker_dir, self.bundles, self.tls = broker, broker_dir, bundles, tls
        self.passwords: dict[str, str] = {}

    def add(self, name: str, *args: str) -> None:
        self.passwords[name] = provision(self.broker_dir, self.bundles / name, name, *args,
                                         control_port=self.broker.port)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, tls_files: TlsFiles):  # noqa: F811
    base = tmp_path_factory.mktemp("deployed")
    broker_dir = base / "etc-mosquitto-camtrap"
    broker_dir.mkdir()
    for src, name in ((tls_files.ca, "ca.crt"), (tls_files.server_cert, "server.crt"),
                      (tls_files.server_key, "server.key")):
        shutil.copy(src, broker_dir / name)
    broker = DeployedMosquitto(base / "broker", broker_dir)
    dep = Deployment(broker, broker_dir, base / "bundles", tls_files)
    dep.add(STATION_A, "--latitude", "43.24", "--longitude", "133.89")  # the broker is not running yet:
    dep.add(STATION_B)                                                  # these go into the plugin's file
    dep.add("anna", "--role", "researcher")
    dep.add("collector", "--role", "collector")
    dep.add("ivan", "--role", "operator")
    broker.start()
    dep.add("collector-2", "--role", "collector")  # running: sent to the broker, taken at once
    dep.add("lab-gis", "--role", "researcher", "--exact-locations")
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
    watcher = clients(deployment, "collector", subscribe=tuple(f"camtrap/v1/+/{k}" for k in
                                                               ("detection", "thumbnail", "health", "status")))
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


def refused(codes) -> bool:
    return [c.getName() for c in codes] == ["Not authorized"]


def test_a_station_cannot_read_another_stations_commands(deployment, clients):
    # The plugin checks each SUBSCRIBE against the account's roles, and each delivery too.
    a = clients(deployment, STATION_A)
    for topic in (B.commands, "camtrap/v1/+/command/+", "#", "$share/x/" + B.commands):
        assert refused(a.subscribe(topic)), topic
    assert not refused(a.subscribe(A.commands))
    b = clients(deployment, STATION_B, subscribe=(B.commands,))
    operator = clients(deployment, "ivan")
    for_b, for_a = payload("for b"), payload("for a")
    assert accepted(operator.publish(B.command("reload"), for_b))
    assert accepted(operator.publish(A.command("reload"), for_a))
    assert b.wait_for(B.command("reload"), for_b)
    assert a.wait_for(A.command("reload"), for_a)
    assert {t for t, _ in a.received()} == {A.command("reload")}


def test_a_station_cannot_take_another_stations_session(deployment, clients):
    b = clients(deployment, STATION_B, client_id=STATION_B, session=True, subscribe=(B.commands,))
    b.close()
    operator = clients(deployment, "ivan")
    waiting = payload("queued for b")
    assert accepted(operator.publish(B.command("snapshot"), waiting))
    a = clients(deployment, STATION_A, client_id=STATION_B, session=True)  # B's id: the broker makes it A's own
    assert not a.refused and not a.session_present
    back = clients(deployment, STATION_B, client_id=STATION_B, session=True)
    assert back.session_present  # B's session, untouched
    assert back.wait_for(B.command("snapshot"), waiting)
    assert (B.command("snapshot"), waiting) not in a.received()


# -- researchers, collectors, operators ------------------------------------------------------------
def test_a_researcher_cannot_read_the_stations_own_topics_nor_publish(deployment, clients):
    anna = clients(deployment, "anna")
    for topic in ("camtrap/v1/+/detection", A.detection, A.thumbnail, "camtrap/v1/#", "#", A.commands,
                  "camtrap/v1/_feed/exact/+/detection"):
        assert refused(anna.subscribe(topic)), topic
    for topic in (A.status, A.health, "camtrap/v1/_feed/generalised/+/detection"):
        assert not refused(anna.subscribe(topic)), topic
    operator = clients(deployment, "ivan")
    a = clients(deployment, STATION_A, subscribe=(A.commands,))
    forged = payload("anna's")
    for topic in (A.detection, A.status, "camtrap/v1/anna/detection", A.command("snapshot"),
                  "camtrap/v1/_feed/generalised/lazovsky-07/detection"):
        assert denied(anna.publish(topic, forged)), topic
    detection, status = payload("raw detection"), payload("online")
    assert accepted(a.publish(A.detection, detection))
    assert accepted(a.publish(A.status, status, retain=True))
    assert anna.wait_for(A.status, status)  # status and health carry no coordinates: she reads them
    command = payload("marker")
    assert accepted(operator.publish(A.command("snapshot"), command))
    assert a.wait_for(A.command("snapshot"), command)
    assert (A.detection, detection) not in anna.received()
    assert not any("/command" in t for t, _ in anna.received())


def test_collectors_share_detections_through_a_shared_subscription(deployment, clients):
    shared = "$share/collectors/camtrap/v1/+/detection"
    one = clients(deployment, "collector")
    two = clients(deployment, "collector-2")  # each collector is its own account
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


def test_a_collector_may_ask_a_station_for_a_picture_and_hear_its_answer_but_not_reload_it(deployment, clients):
    collector = clients(deployment, "collector", subscribe=("camtrap/v1/+/command_result",))
    station = clients(deployment, STATION_A, subscribe=(A.commands,))
    ask = payload("snapshot from the dashboard")
    assert accepted(collector.publish(A.command("snapshot"), ask))
    assert station.wait_for(A.command("snapshot"), ask)
    assert denied(collector.publish(A.command("reload"), payload("reload")))
    answer = payload("snapshot taken")
    assert accepted(station.publish(A.command_result, answer))
    assert collector.wait_for(A.command_result, answer)
    assert [t for t, _ in station.received()] == [A.command("snapshot")]  # never the reload


@pytest.mark.parametrize("joiner", ["anna", "lab-gis", STATION_A, "ivan"])
def test_no_other_account_can_join_the_collectors_shared_subscription(deployment, clients, joiner):
    """H4: Mosquitto shares a group's messages among its members, and a member that may not read
    a message swallows it. So no account but a collector may join, whatever its other rights."""
    collector = clients(deployment, "collector")
    shared = "$share/collectors/camtrap/v1/+/detection"
    assert not refused(collector.subscribe(shared))
    intruder = clients(deployment, joiner)
    for topic in (shared, "$share/collectors/camtrap/v1/+/thumbnail", "$share/collectors/#",
                  "$share/collectors/camtrap/v1/lazovsky-07/detection"):
        assert refused(intruder.subscribe(topic)), topic
    station = clients(deployment, STATION_B)
    sent = [payload(f"for the collectors {n}") for n in range(40)]
    for body in sent:
        assert accepted(station.publish(B.detection, body))
    assert collector.wait_for(B.detection, sent[-1])
    assert sorted(p for _, p in collector.received()) == sorted(sent)  # all 40, none lost
    assert intruder.received() == []


def test_an_operator_sends_commands_but_cannot_forge_the_feed(deployment, clients):
    ivan = clients(deployment, "ivan", subscribe=("camtrap/v1/+/status",))
    station = clients(deployment, STATION_A)
    status = payload("online")
    assert accepted(station.publish(A.status, status, retain=True))
    assert ivan.wait_for(A.status, status)
    for topic in (A.detection, A.status, A.thumbnail, "camtrap/v1/ivan/detection",
                  "camtrap/v1/_feed/generalised/lazovsky-07/detection"):
        assert denied(ivan.publish(topic, payload("ivan"))), topic
    assert refused(ivan.subscribe("camtrap/v1/+/detection"))
    assert accepted(ivan.publish(B.command("reload"), payload("reload")))


# -- the collector's session and the researchers' feed, with the real collector ------------------
def collector_service(deployment: Deployment, tmp_path: Path, account: str = "collector") -> CollectorService:
    """The collector as deployed: its provisioned account, a shared subscription, SQLite."""
    bundle = deployment.bundles / account
    return CollectorService.build(parse_collector_config({
        "collector": {"id": account, "data_dir": str(tmp_path / account)},
        "mqtt": {"host": deployment.broker.host, "port": deployment.broker.port, "username": account,
                 "password_file": str(bundle / "collector.password"), "shared_group": "collectors",
                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "http": {"enabled": False}}))


def stored_ids(service: CollectorService) -> set[str]:
    from station.collector.db import Database
    with Database.open(service.cfg.collector.sqlite_resolved_url()) as db:
        return {r["event_id"] for r in db.query_detections(limit=1000)}


def detections(n: int, station_id: str = STATION_B, **where) -> list[dict]:
    t0 = time.time() - 3600
    return [detection_message(t0 + 10 * k, station_id=station_id, **where) for k in range(n)]


def publish_detections(client: Client, msgs: list[dict]) -> None:
    for msg in msgs:
        assert accepted(client.publish(Topics(msg["station_id"]).detection, json.dumps(msg)))


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("impostor", ["anna", STATION_A, "ivan", "collector-2"])
def test_another_account_cannot_take_the_away_collectors_queue(deployment, clients, tmp_path, impostor):
    """C1: the collector is away with 30 detections queued; another account connects with the
    collector's client id and a persistent session. It gets a session of its own (the broker
    makes every client id its user name), and the collector, back, stores all 30."""
    service = collector_service(deployment, tmp_path)
    service.start()
    assert service.ingest.wait_subscribed(10)
    client_id = service.ingest.client_id
    service.stop()
    station = clients(deployment, STATION_B)
    sent = detections(30)
    publish_detections(station, sent)
    taker = clients(deployment, impostor, client_id=client_id, session=True)
    assert not taker.session_present
    time.sleep(0.5)  # what the queue could hand an impostor it hands over at once
    assert [p for t, p in taker.received() if t == B.detection] == []
    taker.close()
    back = collector_service(deployment, tmp_path)
    back.start()
    try:
        assert wait_until(lambda: stored_ids(back) >= {m["event_id"] for m in sent})
    finally:
        back.stop()


def test_takeover_attempts_while_the_collector_runs_cost_nothing(deployment, clients, tmp_path):
    """C1 with the collector running: a researcher takes its client id five times in ten
    seconds while a station sends 100 detections; every one is stored."""
    service = collector_service(deployment, tmp_path)
    service.start()
    try:
        assert service.ingest.wait_subscribed(10)
        station = clients(deployment, STATION_B)
        sent = detections(100)
        for k, msg in enumerate(sent):
            assert accepted(station.publish(B.detection, json.dumps(msg)))
            if k % 20 == 10:
                taker = clients(deployment, "anna", client_id=service.ingest.client_id, session=True)
                assert not taker.refused  # connected, to a session of its own (anna's)
                taker.close()
            time.sleep(0.1)
        assert wait_until(lambda: stored_ids(service) >= {m["event_id"] for m in sent})
        assert service.ingest.counters["disconnects"] == 0  # nobody took its session, even for a moment
    finally:
        service.stop()


def test_researchers_read_the_republished_feed_with_generalised_coordinates(deployment, clients, tmp_path):
    anna = clients(deployment, "anna", session=True, subscribe=("camtrap/v1/_feed/generalised/+/detection",))
    gis = clients(deployment, "lab-gis", session=True, subscribe=("camtrap/v1/_feed/exact/+/detection",))
    assert refused(anna.subscribe("camtrap/v1/_feed/exact/+/detection"))
    service = collector_service(deployment, tmp_path)
    service.start()
    try:
        assert service.ingest.wait_subscribed(10)
        station = clients(deployment, STATION_A)
        sent = detections(5, STATION_A, latitude=43.2412, longitude=133.8857, coordinate_uncertainty_m=30)
        publish_detections(station, sent)
        want = {m["event_id"] for m in sent}

        def ids(client: Client) -> set[str]:
            return {json.loads(p)["message_id"] for t, p in client.received()}

        assert wait_until(lambda: ids(anna) >= want and ids(gis) >= want)
    finally:
        service.stop()
    topics = {t for t, _ in anna.received()}
    assert topics == {f"camtrap/v1/_feed/generalised/{STATION_A}/detection"}
    for _, body in anna.received():
        msg = json.loads(body)
        assert validate_message(msg) == "feed_detection"
        cell = generalise(43.2412, 133.8857, 0.1, 30)
        assert msg["location"] == {"latitude": cell.latitude, "longitude": cell.longitude,
                                   "coordinate_uncertainty_m": cell.coordinate_uncertainty_m, "generalised": True}
        assert (msg["location"]["latitude"], msg["location"]["longitude"]) == (43.25, 133.85)
        assert msg["collector_id"] == "collector"
        text = body.decode()
        for exact in ("43.2412", "133.8857", "43.241", "133.885"):  # no exact coordinate, in any form
            assert exact not in text
    for _, body in gis.received():
        msg = json.loads(body)
        assert validate_message(msg) == "feed_detection"
        assert msg["location"] == {"latitude": 43.2412, "longitude": 133.8857, "coordinate_uncertainty_m": 30,
                                   "generalised": False}
        assert msg["detection"]["location"]["latitude"] == 43.2412


# -- provisioning while the broker runs ------------------------------------------------------------
def test_a_station_provisioned_while_the_broker_runs_connects_at_once(deployment, clients):
    deployment.add("ussuri-03", "--latitude", "44.1", "--longitude", "134.2")
    # No reload, no restart: the running broker took the account from `station provision`.
    after = clients(deployment, "ussuri-03", tls_ca=deployment.tls.ca)
    assert not after.refused
    assert accepted(after.publish(Topics("ussuri-03").detection, payload("new station")))
    assert denied(after.publish(A.detection, payload("new station")))


def test_a_rotated_password_takes_effect_at_once_and_the_old_one_is_refused(deployment, clients):
    old = deployment.passwords["ivan"]
    deployment.add("ivan", "--role", "operator", "--rotate")
    assert deployment.passwords["ivan"] != old
    assert clients(deployment, "ivan", old).refused
    assert not clients(deployment, "ivan").refused


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


def test_the_selftest_of_a_running_station_loses_none_of_its_commands(deployment, clients, tmp_path):
    """The selftest connects as the station itself (the broker allows one client id per
    account): the running station is bounced once, and every command still reaches it."""
    from station.selftest import OK, check_broker

    bundle = deployment.bundles / STATION_A
    station_toml = tmp_path / "station.toml"
    station_toml.write_text((bundle / "station.toml").read_text().replace("/etc/station/", f"{bundle}/")
                            .replace("port = 8883", f"port = {deployment.broker.tls_port}"))
    cfg = load_config(station_toml, {"storage": {"data_dir": str(tmp_path / "data")}})
    commands: list[bytes] = []
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1 << 20)
    publisher = Publisher(cfg.mqtt, cfg.station.id, outbox, subscribe_topics=[A.commands],
                          on_command=lambda topic, body, retained: commands.append(body)).start()
    operator = clients(deployment, "ivan")
    try:
        first = payload("before the selftest")
        assert wait_until(lambda: accepted(operator.publish(A.command("snapshot"), first)) and first in commands)
        sent = []
        for k in range(3):
            check = check_broker(cfg, timeout_s=5)
            assert check.level == OK and f"connected as {STATION_A}" in check.message, check.message
            body = payload(f"right after selftest {k}")  # queued while the station reconnects
            assert accepted(operator.publish(A.command("reload"), body))
            sent.append(body)
        assert wait_until(lambda: all(b in commands for b in sent))
    finally:
        publisher.stop(timeout=2)
        outbox.close()
