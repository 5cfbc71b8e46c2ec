"""The publisher against a real Mosquitto that these tests start, stop and kill themselves."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from station.config.mqtt import MqttSection
from station.feed.outbox import Outbox
from station.feed.client import FeedConfigError
from station.feed.publisher import Publisher
from tests.broker import (Subscriber, broker, make_broker, make_password_file,  # noqa: F401 - fixtures
                          tls_files)

ROOT = Path(__file__).resolve().parents[1]
STATION = "test-01"
PREFIX = f"camtrap/v1/{STATION}"
DETECTION = f"{PREFIX}/detection"
STATUS = f"{PREFIX}/status"


def mqtt_cfg(host: str, port: int, **kw) -> MqttSection:
    base = {"enabled": True, "host": host, "port": port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
    return MqttSection(**{**base, **kw})


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite3", 50 * 1024 * 1024)
    yield box
    box.close()


@pytest.fixture
def publishers():
    """Publishers made by a test; stopped at its end whatever happens."""
    made: list[Publisher] = []
    yield made
    for p in made:
        p.stop(timeout=1)


def start(publishers: list, cfg: MqttSection, outbox: Outbox, **kw) -> Publisher:
    pub = Publisher(cfg, STATION, outbox, **kw)
    publishers.append(pub)
    return pub.start()


def queue(outbox: Outbox, first: int, count: int) -> list[bytes]:
    payloads = []
    for n in range(first, first + count):
        payload = json.dumps({"message_id": f"det-{n}", "n": n}).encode()
        assert outbox.put(DETECTION, payload, message_id=f"det-{n}")
        payloads.append(payload)
    return payloads


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def subscriber(broker):  # noqa: F811
    sub = Subscriber(broker, [f"{PREFIX}/#"])
    yield sub
    sub.close()


# -- delivery ------------------------------------------------------------------------------
def test_every_queued_detection_reaches_the_subscriber_in_order(broker, subscriber, outbox, publishers):  # noqa: F811
    expected = queue(outbox, 0, 120)
    delivered: list[tuple[str, str]] = []
    pub = start(publishers, mqtt_cfg(broker.host, broker.port), outbox,
                on_delivered=lambda mid, kind: delivered.append((mid, kind)))
    assert pub.wait_delivered(15)
    assert subscriber.wait_for(lambda got: len(got) >= 120)
    assert subscriber.payloads(DETECTION) == expected
    assert len(outbox) == 0
    assert sorted(delivered) == sorted((f"det-{n}", "detection") for n in range(120))
    assert pub.stats()["delivered"] == 120 and pub.last_error is None


def test_broker_stopped_while_events_happen_loses_nothing(broker, subscriber, outbox, publishers):  # noqa: F811
    pub = start(publishers, mqtt_cfg(broker.host, broker.port), outbox)
    expected: list[bytes] = []

    def station_at_work() -> None:  # detections keep coming, whatever the broker does
        for n in range(150):
            expected.extend(queue(outbox, n, 1))
            time.sleep(0.004)

    worker = threading.Thread(target=station_at_work)
    worker.start()
    assert wait_until(lambda: pub.stats()["delivered"] >= 30)
    broker.stop()
    assert wait_until(lambda: not pub.connected)
    time.sleep(0.3)
    assert len(outbox) > 0  # queued on the card while the broker is away
    broker.start()
    worker.join()
    assert pub.wait_delivered(20)
    assert len(outbox) == 0
    assert subscriber.wait_for(lambda got: set(expected) <= set(got), timeout=20), \
        f"missing: {len(set(expected) - set(subscriber.payloads()))}"
    # Rows in flight when the link broke were re-sent by paho (DUP), not published again by us.
    assert pub.stats()["published"] == 150


def test_a_broker_that_speaks_only_mqtt_3_1_1_is_served_too(broker, subscriber, outbox, publishers):  # noqa: F811
    expected = queue(outbox, 0, 10)
    pub = start(publishers, mqtt_cfg(broker.host, broker.port, protocol="3.1.1"), outbox)
    assert pub.wait_delivered(10)
    assert subscriber.wait_for(lambda got: got == expected)


# -- processes that die --------------------------------------------------------------------
CHILD = """
import json, sys, time
from station.config.mqtt import MqttSection
from station.feed.outbox import Outbox
from station.feed.publisher import Publisher
args = json.loads(sys.argv[1])
outbox = Outbox(args["outbox"], 10**8)
online = (lambda: pub.publish_now(args["status"], b"online", qos=1, retain=True)) if args["online"] else None
pub = Publisher(MqttSection(**args["mqtt"]), "test-01", outbox, will=(args["status"], b"offline"),
                on_connected=online)
pub.start()
for n in range(args["count"]):
    outbox.put(args["topic"], json.dumps({"message_id": f"det-{n}", "n": n}).encode(), message_id=f"det-{n}")
print("ready", flush=True)
time.sleep(60)
"""


def run_station_child(outbox_path: Path, host: str, port: int, count: int, online: bool) -> subprocess.Popen:
    args = {"outbox": str(outbox_path), "topic": DETECTION, "status": STATUS, "count": count,
            "online": online, "mqtt": {"enabled": True, "host": host, "port": port,
                                       "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()


def test_station_killed_with_undelivered_detections_delivers_them_after_restart(tmp_path, publishers):
    broker = make_broker(tmp_path / "broker")  # noqa: F811 - not started yet: the station is cut off
    path = tmp_path / "outbox.sqlite3"
    sigkill(run_station_child(path, broker.host, broker.port, count=40, online=False))

    broker.start()
    sub = Subscriber(broker, [DETECTION])
    try:
        with Outbox(path, 10**8) as outbox:
            assert len(outbox) == 40
            pub = start(publishers, mqtt_cfg(broker.host, broker.port), outbox)
            assert pub.wait_delivered(15)
            pub.stop()
        expected = [json.dumps({"message_id": f"det-{n}", "n": n}).encode() for n in range(40)]
        assert sub.wait_for(lambda got: len(got) >= 40)
        assert sub.payloads() == expected
    finally:
        sub.close()
        broker.stop()


def test_the_will_says_offline_when_the_station_is_killed(tmp_path, broker):  # noqa: F811
    sub = Subscriber(broker, [STATUS])
    try:
        proc = run_station_child(tmp_path / "outbox.sqlite3", broker.host, broker.port, count=0, online=True)
        assert sub.wait_for(lambda got: b"online" in got)
        sigkill(proc)
        assert sub.wait_for(lambda got: got[-1:] == [b"offline"], timeout=10)
    finally:
        sub.close()


# -- offline behaviour ----------------------------------------------------------------------
def test_an_offline_station_idles_and_reconnects_with_backoff(tmp_path, outbox, publishers):
    broker = make_broker(tmp_path / "broker")  # noqa: F811 - down for now
    cfg = mqtt_cfg(broker.host, broker.port, reconnect_min_s=0.2, reconnect_max_s=1.0)
    pub = start(publishers, cfg, outbox)
    queue(outbox, 0, 5)
    cpu = time.process_time()
    time.sleep(3.0)
    cpu = time.process_time() - cpu
    stats = pub.stats()
    assert not pub.connected
    # 0.2, 0.4, 0.8, 1.0 ... s apart: about five attempts in 3 s, not thousands.
    assert 2 <= stats["connect_attempts"] <= 7, stats
    assert stats["sender_wakeups"] <= 2, stats  # the sender sleeps until the broker is back
    assert stats["published"] == 0 and len(outbox) == 5
    assert cpu < 1.0  # a spinning loop would burn about 3 s of CPU here
    assert pub.last_error.startswith("mqtt.host/mqtt.port: ") and "refused the connection" in pub.last_error
    assert not pub.publish_now(f"{PREFIX}/health", b"{}")  # nothing piles up in memory

    broker.start()
    try:
        assert pub.wait_delivered(10)
        assert pub.last_error is None
    finally:
        broker.stop()


def test_commands_sent_while_the_station_was_away_wait_for_it(tmp_path, broker, outbox, publishers):  # noqa: F811
    received: list[tuple[str, bytes]] = []
    cfg = mqtt_cfg(broker.host, broker.port)
    topics = [f"{PREFIX}/command/+"]
    first = start(publishers, cfg, outbox, on_command=lambda t, p, retained: received.append((t, p)),
                  subscribe_topics=topics)
    assert wait_until(lambda: first.connected)
    operator = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="operator",
                           protocol=mqtt.MQTTv5)
    operator.connect(broker.host, broker.port)
    operator.loop_start()
    try:
        time.sleep(0.2)  # the subscription is in place
        operator.publish(f"{PREFIX}/command/snapshot", b"1", qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(received) == 1)
        first.stop()
        operator.publish(f"{PREFIX}/command/reload", b"2", qos=1).wait_for_publish(5)
        start(publishers, cfg, outbox, on_command=lambda t, p, retained: received.append((t, p)),
              subscribe_topics=topics)
        assert wait_until(lambda: len(received) == 2)
        assert received == [(f"{PREFIX}/command/snapshot", b"1"), (f"{PREFIX}/command/reload", b"2")]
    finally:
        operator.disconnect()
        operator.loop_stop()


def test_a_publish_the_broker_refuses_stays_in_the_outbox(tmp_path, outbox, publishers):
    acl = tmp_path / "acl"
    acl.write_text(f"topic write {STATUS}\n")  # anonymous clients may write their status only
    broker = make_broker(tmp_path / "broker", extra_conf=f"acl_file {acl}").start()  # noqa: F811
    try:
        pub = start(publishers, mqtt_cfg(broker.host, broker.port, reconnect_min_s=0.2), outbox)
        queue(outbox, 0, 1)
        assert wait_until(lambda: pub.stats()["refused_publishes"] >= 2)
        time.sleep(0.5)
        assert len(outbox) == 1
        assert pub.stats()["refused_publishes"] <= 4  # retried with backoff, not hammered
        assert "refused a message" in pub.last_error and "Not authorized" in pub.last_error
    finally:
        broker.stop()


# -- credentials ----------------------------------------------------------------------------
def test_wrong_password_is_reported_once_naming_the_keys_and_retried_with_backoff(
        tmp_path, outbox, publishers, caplog):
    passwords = make_password_file(tmp_path / "passwd", {"station": "right horse battery"})
    broker = make_broker(tmp_path / "broker", allow_anonymous=False, password_file=passwords).start()  # noqa: F811
    try:
        cfg = mqtt_cfg(broker.host, broker.port, username="station", password="wrong",
                       reconnect_min_s=0.2, reconnect_max_s=1.0)
        with caplog.at_level(logging.ERROR, logger="station.feed"):
            pub = start(publishers, cfg, outbox)
            time.sleep(2.5)
        assert not pub.connected
        assert pub.last_error.startswith("mqtt.username and mqtt.password: ")
        assert "Bad user name or password" in pub.last_error or "Not authorized" in pub.last_error
        assert 2 <= pub.stats()["connect_attempts"] <= 6
        assert len([r for r in caplog.records if "refused the connection" in r.getMessage()]) == 1
        pub.stop()

        secret = tmp_path / "mqtt-password"
        secret.write_text("right horse battery\n")
        cfg = mqtt_cfg(broker.host, broker.port, username="station", password_file=secret)
        pub = start(publishers, cfg, outbox)
        queue(outbox, 0, 3)
        assert pub.wait_delivered(10)
    finally:
        broker.stop()


def test_a_password_file_that_cannot_be_read_names_the_key(tmp_path, outbox):
    missing = tmp_path / "no-such-file"
    with pytest.raises(FeedConfigError, match=r"^mqtt.password_file: .*no such file"):
        Publisher(mqtt_cfg("127.0.0.1", 1883, username="u", password_file=missing), STATION, outbox)
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(FeedConfigError, match=r"^mqtt.password_file: .*empty"):
        Publisher(mqtt_cfg("127.0.0.1", 1883, username="u", password_file=empty), STATION, outbox)


# -- TLS --------------------------------------------------------------------------------------
def test_broken_tls_settings_name_the_key(tmp_path, tls_files, outbox):  # noqa: F811
    t = tls_files
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    fake_cert = tmp_path / "fake.pem"
    fake_cert.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    cases = [
        ({"ca_file": tmp_path / "missing.crt"}, r"^mqtt.ca_file: .*no such file"),
        ({"ca_file": garbage}, r"^mqtt.ca_file: .*not a PEM certificate"),
        ({"ca_file": fake_cert}, r"^mqtt.ca_file: .*not a usable CA certificate"),
        ({"ca_file": t.ca, "cert_file": t.client_key, "key_file": t.client_key}, r"^mqtt.cert_file: "),
        ({"ca_file": t.ca, "cert_file": t.client_cert, "key_file": t.client_cert}, r"^mqtt.key_file: "),
        ({"ca_file": t.ca, "cert_file": t.client_cert, "key_file": t.other_client_key},
         r"^mqtt.key_file: .*does not belong to the certificate"),
    ]
    for settings, message in cases:
        with pytest.raises(FeedConfigError, match=message):
            Publisher(mqtt_cfg("127.0.0.1", 8883, tls=True, **settings), STATION, outbox)


def test_certificate_without_key_is_a_config_error_naming_the_key(tls_files):  # noqa: F811
    with pytest.raises(ValidationError, match="mqtt.key_file"):
        MqttSection(tls=True, cert_file=tls_files.client_cert)
    with pytest.raises(ValidationError, match="mqtt.ca_file: only used with TLS"):
        MqttSection(ca_file=tls_files.ca)


@pytest.fixture
def tls_broker(tmp_path, tls_files):  # noqa: F811
    b = make_broker(tmp_path / "tls-broker", tls=tls_files.broker_side()).start()
    yield b
    b.stop()


def test_tls_with_the_right_ca_delivers(tls_broker, tls_files, outbox, publishers):  # noqa: F811
    cfg = mqtt_cfg(tls_broker.host, tls_broker.tls_port, tls=True, ca_file=tls_files.ca)
    pub = start(publishers, cfg, outbox)
    queue(outbox, 0, 5)
    assert pub.wait_delivered(10)


def test_tls_with_the_wrong_ca_fails_clearly(tls_broker, tls_files, outbox, publishers, caplog):  # noqa: F811
    cfg = mqtt_cfg(tls_broker.host, tls_broker.tls_port, tls=True, ca_file=tls_files.other_ca)
    pub = start(publishers, cfg, outbox)
    assert wait_until(lambda: pub.last_error is not None)
    assert pub.last_error.startswith("mqtt.ca_file: ")
    assert "not trusted" in pub.last_error and not pub.connected
    assert any(r.getMessage().startswith("mqtt.ca_file: ") for r in caplog.records)  # the station's log too


def test_tls_client_certificate_when_the_broker_requires_one(tmp_path, tls_files, outbox, publishers):  # noqa: F811
    broker = make_broker(tmp_path / "broker", tls=tls_files.broker_side(require_certificate=True)).start()  # noqa: F811
    try:
        without = start(publishers, mqtt_cfg(broker.host, broker.tls_port, tls=True, ca_file=tls_files.ca),
                        outbox)
        assert wait_until(lambda: without.last_error is not None)
        assert "mqtt.cert_file" in without.last_error and not without.connected
        without.stop()
        cfg = mqtt_cfg(broker.host, broker.tls_port, tls=True, ca_file=tls_files.ca,
                       cert_file=tls_files.client_cert, key_file=tls_files.client_key)
        pub = start(publishers, cfg, outbox)
        queue(outbox, 0, 3)
        assert pub.wait_delivered(10)
    finally:
        broker.stop()
