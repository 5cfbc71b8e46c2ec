"""``station selftest``: one screen a ranger can read in the forest.

    OK    camera    picamera2: 1280x720 still in 0.9 s, brightness 96/255
    OK    model     efficientnet_lite0_int8 on ai_edge_litert: loaded in 0.6 s, one picture in 41 ms
    OK    disk      /var/lib/station: 11.2 GB free (floor 500 MB), writable; 134 events
    WARN  clock     2026-11-25 15:40 Asia/Vladivostok; not NTP-synchronised: ...
    FAIL  broker    mqtt.host/mqtt.port: collector.example.org:8883 refused the connection ...
    OK    schedule  dusk-dawn, margin 30 min: sleeping now; wakes at 16:12
    OK    power     ina219 on i2c-1 at 0x40, shunt 0.1 ohm: battery 12.61 V, 0.214 A, 2.67 W
    WARN  supply    the Pi's 5 V supply is under-voltage now (rpi_volt hwmon): ...
    OK    temp      SoC 51.2 degrees C (warns at 80: power.warn_temperature_c)
    OK    software  station 0.1.0, Python 3.11.2, ai_edge_litert

Every check runs under a time limit (a camera that hangs is a FAIL, not a frozen screen),
and every WARN or FAIL names the config key to look at. ``exit_code``: 0 all OK, 1
warnings, 2 failures. The checks are plain functions of the config so the tests call them.

The camera is opened here: stop the station first (``sudo systemctl stop station``), since a
Pi camera serves one process at a time.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import textwrap
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from station import __version__, sysinfo
from station.config import StationConfig

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SOFTWARE_DATE = datetime(2026, 11, 1, tzinfo=timezone.utc)
"""This version was written after this: a clock showing an earlier time is wrong (a Pi
without a real-time clock starts where it last stopped, or in 1970)."""
CAMERA_WARMUP_S = 1.0
"""Live cameras run this long before the still is judged (auto-exposure settles)."""
DARK, BRIGHT = 8, 247


@dataclass
class Check:
    name: str
    level: str
    message: str
    key: str | None = None
    """The config key to look at, for WARN and FAIL."""
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Hung(Exception):
    pass


class _Refused(Exception):
    """The broker answered CONNECT with a failure reason code."""

    def __init__(self, reason: Any):
        super().__init__(str(reason))
        self.reason = reason


def _within(fn: Callable[[], Any], timeout_s: float) -> Any:
    """``fn()`` in a helper thread; :class:`_Hung` if it has not returned in time (the
    thread is left behind: a call stuck in a driver cannot be interrupted)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="selftest", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise _Hung()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- camera -----------------------------------------------------------------------------
def check_camera(cfg: StationConfig, timeout_s: float = 10.0) -> tuple[Check, np.ndarray | None]:
    """Open the camera, let it settle, take one full-resolution still; (check, the still)."""
    from station.camera import CameraError, CameraURIError, open_camera

    try:
        camera = open_camera(cfg.camera.uri, cfg.camera)
    except CameraURIError as exc:
        return Check("camera", FAIL, f"camera.uri: {str(exc).splitlines()[0]}", "camera.uri"), None

    def grab():
        camera.open()
        try:
            for _ in range(max(1, round(camera.fps * CAMERA_WARMUP_S)) if camera.live else 0):
                if camera.read(want_main=False) is None:
                    return None
            return camera.read(want_main=True)
        finally:
            camera.close()

    started = time.monotonic()
    busy = (" (if the station service is running it holds the camera: sudo systemctl stop station, "
            "then run the selftest again)") if camera.live else ""
    try:
        frame = _within(grab, timeout_s)
    except _Hung:
        return Check("camera", FAIL, f"camera.uri: {camera.uri} gave no frame within {timeout_s:g} s "
                     "(the camera hangs: check the cable and the power, then reboot)", "camera.uri"), None
    except CameraError as exc:
        return Check("camera", FAIL, f"camera.uri: {exc}{busy}", "camera.uri"), None
    took = time.monotonic() - started
    if frame is None or frame.main is None:
        return Check("camera", FAIL, f"camera.uri: {camera.uri} gave no picture (an empty replay?)",
                     "camera.uri"), None
    h, w = frame.main.shape[:2]
    brightness = float(np.mean(frame.lores))
    text = f"{camera.uri}: {w}x{h} still in {took:.1f} s, brightness {brightness:.0f}/255"
    if brightness < DARK:
        return Check("camera", WARN, f"camera.uri: {text}: nearly black (lens cap on? infrared light "
                     "off at night?)", "camera.uri", took), frame.main
    if brightness > BRIGHT:
        return Check("camera", WARN, f"camera.uri: {text}: washed out (facing the sun? wrong "
                     "exposure?)", "camera.uri", took), frame.main
    return Check("camera", OK, text, seconds=took), frame.main


# -- model ------------------------------------------------------------------------------
def _classifier_key(cfg: StationConfig, message: str) -> str:
    c = cfg.classifier
    for key, path in (("labels", c.labels), ("taxonomy", c.taxonomy), ("metadata", c.metadata), ("model", c.model)):
        if path is not None and str(path) in message:
            return f"classifier.{key}"
    if "runtime" in message:
        return "classifier.runtime"
    if "region" in message:
        return "classifier.region"
    return "classifier.model"


def check_model(cfg: StationConfig, image: np.ndarray | None = None, timeout_s: float = 30.0) -> Check:
    """Load the model as the daemon would and classify one picture (the camera's still)."""
    if not cfg.classifier.enabled:
        return Check("model", OK, "off (classifier.enabled = false): events are kept untagged")
    from station.classifier import Classifier, ClassifierError

    started = time.monotonic()
    try:
        classifier = _within(lambda: Classifier.from_config(cfg.classifier), timeout_s)
    except _Hung:
        return Check("model", FAIL, f"classifier.model: {cfg.classifier.model} did not load within "
                     f"{timeout_s:g} s", "classifier.model")
    except ClassifierError as exc:
        key = _classifier_key(cfg, str(exc))
        return Check("model", FAIL, f"{key}: {' '.join(str(exc).split())}", key)
    loaded = time.monotonic() - started
    picture = image if image is not None else np.full((240, 320, 3), 110, np.uint8)
    t0 = time.monotonic()
    try:
        result = _within(lambda: classifier.classify_image(picture), timeout_s)
    except _Hung:
        return Check("model", FAIL, f"classifier.model: one picture took over {timeout_s:g} s", "classifier.model")
    ms = (time.monotonic() - t0) * 1000
    info = classifier.model.info
    return Check("model", OK, f"{info.name} on {info.runtime} ({info.threads} threads): loaded in {loaded:.1f} s, "
                 f"one picture in {ms:.0f} ms (it says: {result.tag})", seconds=loaded + ms / 1000)


# -- disk -------------------------------------------------------------------------------
def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.0f} MB"


def check_disk(cfg: StationConfig) -> Check:
    data_dir = Path(cfg.storage.data_dir)
    try:
        (data_dir / "events").mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".selftest-write"
        with open(probe, "wb") as f:
            f.write(b"selftest")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        return Check("disk", FAIL, f"storage.data_dir: {data_dir} is not writable ({exc.strerror or exc}): "
                     "a read-only or missing SD card, or wrong permissions", "storage.data_dir")
    usage = shutil.disk_usage(data_dir)
    floor = cfg.storage.min_free_mb * 2**20
    events = sum(1 for p in (data_dir / "events").iterdir() if p.is_dir())
    text = (f"{data_dir}: {_size(usage.free)} free of {_size(usage.total)} (floor {_size(floor)}), "
            f"writable; {events} events")
    if usage.free < floor:
        return Check("disk", FAIL, f"storage.min_free_mb: {text}: below the floor, the oldest events are "
                     "being pruned and new stills may not be kept: free space or use a bigger card",
                     "storage.min_free_mb")
    if floor and usage.free < 2 * floor:
        return Check("disk", WARN, f"storage.min_free_mb: {text}: close to the floor", "storage.min_free_mb")
    return Check("disk", OK, text)


# -- clock ------------------------------------------------------------------------------
def check_clock(cfg: StationConfig, now: float | None = None,
                sync: Callable[[], dict[str, Any]] = sysinfo.clock_sync) -> Check:
    now = time.time() if now is None else now
    utc = datetime.fromtimestamp(now, timezone.utc)
    local = utc.astimezone(cfg.schedule.zone) if cfg.schedule.timezone else None
    shown = utc.strftime("%Y-%m-%d %H:%M UTC") + (f" ({local:%H:%M} {cfg.schedule.timezone})" if local else "")
    if utc < SOFTWARE_DATE:
        return Check("clock", FAIL, f"{shown} is before this software was made ({SOFTWARE_DATE:%Y-%m-%d}): "
                     "the clock is wrong, so event times are too; connect to a network (NTP) or set it: "
                     "sudo date -s 'YYYY-MM-DD HH:MM'")
    state = sync()
    if state.get("synchronized") is True:
        return Check("clock", OK, f"{shown}, synchronised ({state.get('source')})")
    if state.get("synchronized") is False:
        return Check("clock", WARN, f"{shown}; not NTP-synchronised ({state.get('source')}): event times may "
                     "drift; give the station network time now and then, or an RTC or GPS")
    return Check("clock", WARN, f"{shown}; cannot tell whether the clock is synchronised (no timedatectl "
                 "answer): check the time against a phone")


# -- broker -----------------------------------------------------------------------------
def _connect_mqtt(cfg: StationConfig, timeout_s: float) -> str:
    """A CONNECT with the station's credentials and TLS; the result's text, or raise."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from station.feed.client import build_tls_context, new_client, read_password

    # The station's own client id and session: a deployed broker makes every client id the
    # account's name (docs/deployment.md), so another id would be this one anyway, and a
    # clean start would wipe the station's session (its subscriptions, commands queued for
    # it). So the session is resumed as it is, nothing in it is acknowledged (the broker
    # hands it to the station again), and it keeps the station's own expiry. A running
    # station is disconnected for a moment and reconnects.
    m = cfg.mqtt.model_copy(update={"clean_start": False})
    client_id = m.effective_client_id(cfg.station.id)
    client = new_client(m, client_id, password=read_password(m), tls=build_tls_context(m), manual_ack=True)
    answer: dict[str, Any] = {}
    client.on_connect = lambda c, u, flags, reason, props: answer.setdefault("reason", reason)
    keepalive = max(10, int(timeout_s) + 5)
    if m.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = m.session_expiry_s
        client.connect(m.host, m.port, keepalive, clean_start=False, properties=props)
    else:  # 3.1.1: clean_session=False came with the client (new_client)
        client.connect(m.host, m.port, keepalive)
    try:
        deadline = time.monotonic() + timeout_s
        while "reason" not in answer and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        if "reason" not in answer:
            raise _Hung()
        reason = answer["reason"]
        if reason.is_failure:
            raise _Refused(reason)
        return client_id
    finally:
        client.disconnect()


def check_broker(cfg: StationConfig, timeout_s: float = 10.0) -> Check:
    m = cfg.mqtt
    if not m.enabled:
        return Check("broker", OK, "not configured (mqtt.enabled = false): events stay on the card")
    from station.feed.client import FeedConfigError, check_settings, describe_connect_error, describe_refusal

    try:
        check_settings(m)
    except FeedConfigError as exc:
        return Check("broker", FAIL, str(exc), exc.key)
    where = f"{m.host}:{m.port}"
    hostport = "mqtt.host/mqtt.port"
    started = time.monotonic()
    try:
        socket.create_connection((m.host, m.port), timeout=timeout_s).close()
        client_id = _connect_mqtt(cfg, timeout_s)
    except _Refused as exc:
        problem = describe_refusal(m, exc.reason)
        return Check("broker", FAIL, problem.message, problem.key)
    except _Hung:
        return Check("broker", FAIL, f"{hostport}: {where} accepted TCP but gave no MQTT answer within "
                     f"{timeout_s:g} s (not an MQTT port? TLS expected?)", hostport)
    except OSError as exc:  # DNS, TCP, TLS: the same sentences the station's feed logs
        problem = describe_connect_error(m, exc)
        return Check("broker", FAIL, problem.message, problem.key)
    took = time.monotonic() - started
    scheme = "mqtts" if m.tls else "mqtt"
    return Check("broker", OK, f"{scheme}://{where}: connected as {client_id} (user {m.username or '-'}, "
                 f"MQTT {m.protocol}) in {took:.2f} s", seconds=took)


# -- power -------------------------------------------------------------------------------
def check_power(cfg: StationConfig, opener: Callable[[], Any] | None = None, timeout_s: float = 10.0) -> Check:
    """Read the battery monitor once (``opener``: the tests' INA219 on a fake bus)."""
    from station.power import open_monitor
    from station.power.ina219 import MonitorError

    p = cfg.power
    opener = opener or open_monitor(cfg)
    if opener is None:
        return Check("power", OK, "no battery monitor (power.monitor = \"none\"): no battery voltage or "
                     "watt-hours in health")

    def read():
        monitor = opener()
        try:
            return monitor.read()
        finally:
            close = getattr(getattr(monitor, "bus", None), "close", None)
            if close is not None:
                close()

    where = p.describe()
    try:
        r = _within(read, timeout_s)
    except _Hung:
        return Check("power", FAIL, f"power.i2c_bus: {where} gave no answer within {timeout_s:g} s", "power.i2c_bus")
    except MonitorError as exc:
        text = str(exc) if str(exc).startswith(exc.key) else f"{exc.key}: {exc}"
        return Check("power", FAIL, text, exc.key)
    text = f"{where}: battery {r.battery_v:.2f} V, {r.current_a:.3f} A, {r.power_w:.2f} W"
    limits = cfg.schedule.low_battery
    if limits is not None and r.battery_v < limits[0]:
        return Check("power", WARN, f"schedule.low_battery_v: {text}: below {limits[0]:g} V, so the station follows "
                     f"the low-battery schedule ({cfg.schedule.reduced().describe()}) until above {limits[1]:g} V: "
                     "charge or swap the battery", "schedule.low_battery_v")
    if r.current_a < 0:
        return Check("power", WARN, f"power.shunt_ohms: {text}: the current flows backwards (VIN+ and VIN- "
                     "swapped?)", "power.shunt_ohms")
    return Check("power", OK, text)


def check_supply(cfg: StationConfig, flags: Any = None) -> Check:
    """The Pi's own supply: under-voltage and throttling now (``flags``: a reader of a fake
    /sys tree in the tests)."""
    from station.power.pi import PiFlagsReader

    f = (flags or PiFlagsReader()).read()
    if f is None:
        return Check("supply", OK, "not a Raspberry Pi (no under-voltage flags here)")
    source = {"hwmon": "rpi_volt hwmon", "get_throttled": "firmware get_throttled",
              "vcgencmd": "vcgencmd get_throttled"}[f.source]
    if f.undervoltage:
        return Check("supply", WARN, f"the Pi's 5 V supply is under-voltage now ({source}): the converter is too "
                     "weak, its cable too thin or long, or the battery nearly flat; the Pi may crash or corrupt "
                     "its card")
    if f.throttled or f.frequency_capped:
        return Check("supply", WARN, f"no under-voltage, but the Pi is slowing itself down now ({source}: "
                     f"{'throttled' if f.throttled else 'frequency capped'}): too hot, see the temp line")
    return Check("supply", OK, f"no under-voltage ({source})")


def check_temperature(cfg: StationConfig, read: Callable[[], float | None] = sysinfo.cpu_temperature_c,
                      flags: Any = None) -> Check:
    limit = cfg.power.warn_temperature_c
    celsius = read()
    if celsius is None:
        return Check("temp", OK, "no SoC temperature sensor on this machine")
    text = f"SoC {celsius:.1f} degrees C"
    if celsius >= limit:
        return Check("temp", WARN, f"power.warn_temperature_c: {text}, at or above {limit:g}: the Pi slows "
                     "itself down; shade the box, give it air or a heat sink", "power.warn_temperature_c")
    f = flags.read() if flags is not None else None
    if f is not None and f.soft_temperature_limit:
        return Check("temp", WARN, f"power.warn_temperature_c: {text}, but the firmware's soft temperature limit "
                     "is active: the Pi slows itself down", "power.warn_temperature_c")
    return Check("temp", OK, f"{text} (warns at {limit:g}: power.warn_temperature_c)")


# -- schedule, software ------------------------------------------------------------------
def check_schedule(cfg: StationConfig, now: float | None = None) -> Check:
    from station.camera import parse_uri
    from station.schedule import format_change, is_active

    s = cfg.schedule
    low = (f"; below {s.low_battery[0]:g} V on the battery: {s.reduced().describe()} (schedule.low_battery_v)"
           if s.low_battery is not None else "")
    if s.mode == "always":
        return Check("schedule", OK, "always watching (schedule.active = \"always\")" + low)
    now = time.time() if now is None else now
    active, change = is_active(cfg, now)
    verb = "sleeps" if active else "wakes"
    text = (f"{s.describe()}: {'watching' if active else 'sleeping'} now; {verb} at "
            f"{format_change(change, now)} {s.timezone or 'UTC'}" if change else
            f"{s.describe()}: {'watching' if active else 'sleeping'} now, and no change within a year")
    try:
        live = parse_uri(cfg.camera.uri).kind in ("picamera2", "device", "stream")
    except ValueError:
        live = True
    if not live:
        text += " (ignored for this camera: replays and simulations run on their own clock)"
    return Check("schedule", OK, text + low)


def check_software() -> Check:
    from station.classifier.runtime import available_runtimes

    runtimes = ", ".join(available_runtimes()) or "no TFLite runtime"
    return Check("software", OK, f"station {__version__}, Python {platform.python_version()}, {runtimes}")


# -- all of it ----------------------------------------------------------------------------
def run_selftest(cfg: StationConfig, timeout_s: float = 10.0) -> list[Check]:
    camera, still = check_camera(cfg, timeout_s)
    from station.power.pi import PiFlagsReader

    flags = PiFlagsReader()
    return [camera, check_model(cfg, still, timeout_s=max(30.0, 3 * timeout_s)), check_disk(cfg),
            check_clock(cfg), check_broker(cfg, timeout_s), check_schedule(cfg), check_power(cfg, timeout_s=timeout_s),
            check_supply(cfg, flags), check_temperature(cfg, flags=flags), check_software()]


def exit_code(checks: list[Check]) -> int:
    levels = {c.level for c in checks}
    return 2 if FAIL in levels else 1 if WARN in levels else 0


def format_report(cfg: StationConfig, checks: list[Check], config_path: Path | str | None = None,
                  width: int = 100) -> str:
    head = f"Station {cfg.station.id} ({cfg.station.deployment_id})"
    if config_path:
        head += f", config {config_path}"
    lines = [head]
    for c in checks:
        lines.append(textwrap.fill(c.message, width=width, initial_indent=f"{c.level:<5} {c.name:<9} ",
                                   subsequent_indent=" " * 16))
    fails = sum(c.level == FAIL for c in checks)
    warns = sum(c.level == WARN for c in checks)
    if fails:
        lines.append(f"{fails} FAIL, {warns} WARN: fix the key named on each FAIL line, then run this again.")
    elif warns:
        lines.append(f"{warns} WARN: the station works; look at the WARN lines when you can.")
    else:
        lines.append("All OK.")
    return "\n".join(lines)
