"""``station bench feed``: how fast the outbox fills and drains to a real broker.

Figures, never assertions. A private Mosquitto is started on a free port of this
machine (never the system broker), and a paho subscriber listens at QoS 1:

* outbox commits per second: ``put`` of detection-sized payloads (~1.5 KB), each its
  own transaction with ``synchronous=FULL`` (one fsync of the WAL per detection);
* drain rate: a backlog of N detections, as after a long outage, published at QoS 1
  with the configured in-flight window, until the broker has acknowledged all of them
  and they are deleted from the outbox, and until the subscriber holds all of them;
  with the process CPU time spent per message;
* put-to-received latency, median and p95: one detection at a time committed to the
  outbox of a running publisher, until the subscriber receives it. (The daemon's
  trigger-to-delivered latency adds event closing and classification to this.)

Timings are noisy on a shared machine: the report gives the load average it ran under.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from station.config.mqtt import MqttSection
from station.feed.broker_process import Mosquitto
from station.feed.outbox import Outbox
from station.feed.publisher import Publisher

TOPIC = "camtrap/v1/bench-01/detection"
PAYLOAD_BYTES = 1500


def detection_payload(n: int) -> bytes:
    """A detection-shaped JSON document of about PAYLOAD_BYTES."""
    body = {"schema": 1, "message_id": f"bench-{n:08d}", "station_id": "bench-01", "tag": "leopard",
            "confidence": 0.87, "top_k": [{"label": f"label-{k}", "p": round(0.5 / (k + 1), 4)} for k in range(5)]}
    text = json.dumps(body)
    return (text[:-1] + ', "pad": "' + "x" * max(0, PAYLOAD_BYTES - len(text) - 11) + '"}').encode()


class _Counter:
    """A QoS 1 subscriber that notes when each message arrives."""

    def __init__(self, broker: Mosquitto):
        self.count = 0
        self.arrivals: dict[bytes, float] = {}
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sub",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("bench subscriber could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        now = time.perf_counter()
        with self._cond:
            self.count += 1
            self.arrivals.setdefault(bytes(msg.payload), now)
            self._cond.notify_all()

    def wait_count(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _mosquitto_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
        return out.splitlines()[0].strip() if out else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true", help="smaller backlog, fewer latency samples")
    p.add_argument("--outbox-dir", type=Path, default=None,
                   help="where to put the outbox (a folder on the station's SD card measures its fsync)")


def run(quick: bool = False, outbox_dir: Path | None = None) -> dict:
    """The outbox and drain figures, then event-to-delivered latency through the real
    station (:mod:`station.bench.latency`)."""
    from station.bench import latency

    result = run_outbox(quick, outbox_dir)
    result["event_to_delivered"] = latency.measure(samples=20 if quick else 50, scene_s=300.0 if quick else 900.0)
    return result


def run_outbox(quick: bool = False, outbox_dir: Path | None = None) -> dict:
    """``outbox_dir``: where to put the outbox (default: a temporary folder); give a folder
    on the station's SD card to measure the card's fsync, which sets the commit rate."""
    n_backlog = 500 if quick else 5000
    n_latency = 20 if quick else 100
    result: dict = {"payload_bytes": PAYLOAD_BYTES, "backlog": n_backlog, "latency_samples": n_latency,
                    "paho_mqtt": importlib.metadata.version("paho-mqtt"), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-feed-") as tmp:
        tmp = Path(tmp)
        broker = Mosquitto(tmp / "broker").start()
        result["mosquitto"] = _mosquitto_version(broker.binary)
        sub = _Counter(broker)
        box_dir = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=outbox_dir)) if outbox_dir else tmp
        result["outbox_dir"] = str(box_dir)
        outbox = Outbox(box_dir / "outbox.sqlite3", 500 * 1024 * 1024)
        cfg = MqttSection(enabled=True, host=broker.host, port=broker.port)
        result["max_inflight"] = cfg.max_inflight
        pub = None
        try:
            payloads = [detection_payload(n) for n in range(n_backlog)]
            started = time.perf_counter()
            for n, payload in enumerate(payloads):
                outbox.put(TOPIC, payload, message_id=f"bench-{n:08d}")
            put_s = time.perf_counter() - started
            result["outbox_commits_per_s"] = round(n_backlog / put_s, 1)
            result["outbox_commit_ms"] = round(1000 * put_s / n_backlog, 3)

            pub = Publisher(cfg, "bench-01", outbox)
            cpu = time.process_time()
            started = time.perf_counter()
            pub.start()
            drained = pub.wait_delivered(600)
            drain_s = time.perf_counter() - started
            received = sub.wait_count(n_backlog, 60)
            received_s = time.perf_counter() - started
            cpu = time.process_time() - cpu
            result["drained"] = drained and received
            result["drain_per_s"] = round(n_backlog / drain_s, 1)
            result["received_per_s"] = round(n_backlog / received_s, 1)
            result["cpu_ms_per_message"] = round(1000 * cpu / n_backlog, 3)

            latencies = []
            base = sub.count
            for k in range(n_latency):
                payload = detection_payload(n_backlog + k)
                t0 = time.perf_counter()
                outbox.put(TOPIC, payload, message_id=f"bench-{n_backlog + k:08d}")
                if not sub.wait_count(base + k + 1, 10):
                    break
                latencies.append(1000 * (sub.arrivals[payload] - t0))
                time.sleep(0.01)
            if latencies:
                latencies.sort()
                result["latency_ms_median"] = round(statistics.median(latencies), 2)
                result["latency_ms_p95"] = round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2)
            result["publisher"] = {k: v for k, v in pub.stats().items() if k != "outbox"}
        finally:
            if pub is not None:
                pub.stop()
            sub.close()
            outbox.close()
            broker.stop()
            if outbox_dir:
                shutil.rmtree(box_dir, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    return result


def print_report(r: dict) -> None:
    load = ", ".join(f"{x:.2f}" for x in r["load_before"])
    print(f"MQTT feed: {r['mosquitto']} on 127.0.0.1, paho-mqtt {r['paho_mqtt']}, load average {load}")
    print(f"  outbox put ({r['payload_bytes']} B detections, synchronous=FULL, in {r['outbox_dir']}): "
          f"{r['outbox_commits_per_s']:.0f} commits/s ({r['outbox_commit_ms']:.2f} ms each)")
    print(f"  drain of a {r['backlog']}-detection backlog, QoS 1, {r['max_inflight']} in flight: "
          f"{r['drain_per_s']:.0f} msg/s acknowledged and deleted, {r['received_per_s']:.0f} msg/s received"
          f"{'' if r['drained'] else '  (INCOMPLETE)'}")
    print(f"  CPU: {r['cpu_ms_per_message']:.3f} ms per message (publisher, outbox and the subscriber in this process)")
    if "latency_ms_median" in r:
        print(f"  put -> received by a subscriber, one at a time ({r['latency_samples']}): "
              f"median {r['latency_ms_median']:.1f} ms, p95 {r['latency_ms_p95']:.1f} ms")
    lat = r.get("event_to_delivered")
    if lat:
        print(f"\nEvent closed -> classified -> outbox -> broker -> subscriber ({lat['delivered']}/"
              f"{lat['samples']} real events, one every {lat['interval_s']} s): median {lat['median_ms']} ms, "
              f"p95 {lat['p95_ms']} ms, max {lat['max_ms']} ms (target p95 <= 1000 ms)")
