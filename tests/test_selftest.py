"""`station selftest`: what a ranger reads in the forest, against the real camera sources, model and broker."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from station.config import load_config
from station.feed.broker_process import free_port
from station.selftest import (FAIL, OK, SOFTWARE_DATE, WARN, check_broker, check_camera, check_clock,
                              check_disk, check_model, check_schedule, exit_code, run_selftest)
from tests.broker import Mosquitto, make_broker, make_password_file, require_mosquitto, tls_files  # noqa: F401
from tests.conftest import minimal_toml


def station(tmp_path: Path, camera: str = "synthetic:3", extra: str = "") -> Path:
    path = tmp_path / "station.toml"
    path.write_text(minimal_toml(tmp_path / "data", camera=camera, extra=extra))
    return path


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_a_healthy_station_with_the_real_model_is_ok_line_by_line(tmp_path):
    checks = by_name(run_selftest(load_config(station(tmp_path))))
    assert list(checks) == ["camera", "model", "disk", "clock", "broker", "schedule", "power", "supply", "temp",
                            "software"]
    assert checks["camera"].level == OK and "320x180 still" in checks["camera"].message
    assert checks["model"].level == OK and "ai_edge_litert" in checks["model"].message
    assert checks["model"].message.split("one picture in ")[1].split(" ms")[0].isdigit()
    assert checks["disk"].level == OK and "writable" in checks["disk"].message
    assert checks["broker"].level == OK and "not configured (mqtt.enabled = false)" in checks["broker"].message
    assert checks["schedule"].level == OK and "always" in checks["schedule"].message
    assert checks["software"].level == OK and "station 0.1.0" in checks["software"].message


def test_the_command_prints_one_screen_and_its_exit_code_follows_the_worst_line(tmp_path, station_cmd):
    config = station(tmp_path)
    out = subprocess.run([*station_cmd, "selftest", "--config", str(config)], capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Station test-01 (test-01-dep)")
    levels = {line.split()[1]: line.split()[0] for line in lines[1:] if line[:1].isupper() and
              line.split()[0] in (OK, WARN, FAIL)}
    assert set(levels) == {"camera", "model", "disk", "clock", "broker", "schedule", "power", "supply", "temp",
                           "software"}
    assert levels["camera"] == levels["model"] == OK
    assert out.returncode == (2 if FAIL in levels.values() else 1 if WARN in levels.values() else 0)
    assert lines[-1] == "All OK." if out.returncode == 0 else "WARN" in lines[-1]
    as_json = subprocess.run([*station_cmd, "selftest", "--config", str(config), "--json"],
                             capture_output=True, text=True, timeout=120)
    report = json.loads(as_json.stdout)
    assert report["exit_code"] == as_json.returncode == exit_code_of(report["checks"])


def exit_code_of(checks: list[dict]) -> int:
    levels = {c["level"] for c in checks}
    return 2 if FAIL in levels else 1 if WARN in levels else 0


def test_a_missing_model_fails_naming_classifier_model(tmp_path, station_cmd):
    config = station(tmp_path, extra='[classifier]\nmodel = "/opt/nowhere/leopards.tflite"\n')
    check = check_model(load_config(config))
    assert check.level == FAIL and check.key == "classifier.model"
    assert check.message.startswith("classifier.model: /opt/nowhere/leopards.tflite") and "not found" in check.message
    out = subprocess.run([*station_cmd, "selftest", "--config", str(config)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "FAIL  model     classifier.model:" in out.stdout


def test_an_unreachable_broker_fails_naming_host_and_port(tmp_path):
    port = free_port()  # nothing listens there
    cfg = load_config(station(tmp_path, extra=f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'))
    check = check_broker(cfg, timeout_s=3)
    assert check.level == FAIL and check.key == "mqtt.host/mqtt.port"
    assert check.message.startswith(f"mqtt.host/mqtt.port: 127.0.0.1:{port} refused the connection")
    nowhere = load_config(station(tmp_path, extra='[mqtt]\nenabled = true\nhost = "broker.invalid"\n'))
    assert check_broker(nowhere, timeout_s=3).key == "mqtt.host"


def test_a_reachable_broker_takes_the_stations_credentials(tmp_path):
    require_mosquitto()
    passwd = make_password_file(tmp_path / "passwd", {"test-01": "right horse battery"})
    broker = Mosquitto(tmp_path / "broker", allow_anonymous=False, password_file=passwd).start()
    try:
        def cfg(password: str):
            (tmp_path / "secret").write_text(password + "\n")
            return load_config(station(tmp_path, extra=(
                f'[mqtt]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
                f'username = "test-01"\npassword_file = "{tmp_path / "secret"}"\n')))

        good = check_broker(cfg("right horse battery"), timeout_s=5)
        assert good.level == OK and f"mqtt://{broker.host}:{broker.port}: connected as test-01" in good.message
        bad = check_broker(cfg("wrong"), timeout_s=5)
        assert bad.level == FAIL and bad.key == "mqtt.username" and "refused the connection" in bad.message
    finally:
        broker.stop()


def test_an_anonymous_broker_from_the_tests_is_ok(tmp_path):
    broker = make_broker(tmp_path / "broker").start()
    try:
        mqtt = f'[mqtt]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
        cfg = load_config(station(tmp_path, extra=mqtt))
        assert check_broker(cfg, timeout_s=5).level == OK
    finally:
        broker.stop()


def test_a_camera_that_hangs_is_a_fail_after_the_timeout_not_a_frozen_screen(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()  # then silence
    try:
        cfg = load_config(station(tmp_path, camera=f"http://127.0.0.1:{server.getsockname()[1]}/stream.mjpg"))
        started = time.monotonic()
        check, still = check_camera(cfg, timeout_s=1.0)
        assert time.monotonic() - started < 5
        assert check.level == FAIL and check.key == "camera.uri" and "no frame within 1 s" in check.message
        assert still is None
    finally:
        server.close()


def test_a_black_picture_warns_about_the_lens(tmp_path):
    folder = tmp_path / "night"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame1.jpg"), np.zeros((180, 320, 3), np.uint8))
    check, _ = check_camera(load_config(station(tmp_path, camera=str(folder))))
    assert check.level == WARN and check.key == "camera.uri" and "nearly black" in check.message


def test_a_missing_camera_fails_naming_camera_uri(tmp_path):
    check, _ = check_camera(load_config(station(tmp_path, camera="opencv:9")))
    assert check.level == FAIL and check.key == "camera.uri" and "systemctl stop station" in check.message


def test_a_full_card_or_an_unwritable_folder_fails_naming_the_storage_key(tmp_path):
    cfg = load_config(station(tmp_path))

    def with_storage(**storage):
        return cfg.model_copy(update={"storage": cfg.storage.model_copy(update=storage)})

    full = check_disk(with_storage(min_free_mb=10**9))   # a petabyte floor: no card is that big
    assert full.level == FAIL and full.key == "storage.min_free_mb" and "below the floor" in full.message
    (tmp_path / "file").write_text("not a folder")
    blocked = check_disk(with_storage(data_dir=tmp_path / "file" / "data"))
    assert blocked.level == FAIL and blocked.key == "storage.data_dir" and "not writable" in blocked.message


def test_the_clock_is_judged_by_the_build_date_and_by_ntp():
    from station.config import parse_config

    cfg = parse_config({"station": {"id": "a", "deployment_id": "b", "latitude": 43.1, "longitude": 131.9},
                        "schedule": {"active": "dusk-dawn", "timezone": "Asia/Vladivostok"}})
    now = SOFTWARE_DATE.timestamp() + 86400
    synced = check_clock(cfg, now, sync=lambda: {"synchronized": True, "source": "timedatectl"})
    assert synced.level == OK and "Asia/Vladivostok" in synced.message
    assert check_clock(cfg, now, sync=lambda: {"synchronized": False, "source": "timedatectl"}).level == WARN
    assert check_clock(cfg, now, sync=lambda: {"synchronized": None, "source": None}).level == WARN
    stale = check_clock(cfg, 86400.0 * 365, sync=lambda: {"synchronized": True, "source": "timedatectl"})
    assert stale.level == FAIL and "clock is wrong" in stale.message


def test_the_schedule_line_says_whether_the_station_sleeps_and_until_when(tmp_path):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    cfg = load_config(station(tmp_path, camera="opencv:0",
                              extra='[schedule]\nactive = "22:00-06:00"\ntimezone = "Asia/Vladivostok"\n'))
    noon = datetime(2026, 6, 21, 12, tzinfo=ZoneInfo("Asia/Vladivostok")).timestamp()
    check = check_schedule(cfg, now=noon)
    assert check.level == OK and "sleeping now; wakes at 22:00 Asia/Vladivostok" in check.message
    assert "watching now; sleeps at 06:00" in check_schedule(cfg, now=noon + 11 * 3600).message


def test_exit_codes():
    from station.selftest import Check

    assert exit_code([Check("a", OK, "")]) == 0
    assert exit_code([Check("a", OK, ""), Check("b", WARN, "")]) == 1
    assert exit_code([Check("a", FAIL, ""), Check("b", WARN, "")]) == 2


def test_a_broker_certificate_the_station_does_not_trust_fails_naming_mqtt_ca_file(tmp_path, tls_files):
    broker = make_broker(tmp_path / "broker", tls=tls_files.broker_side()).start()
    try:
        cfg = load_config(station(tmp_path, extra=(
            f'[mqtt]\nenabled = true\nhost = "{broker.host}"\nport = {broker.tls_port}\ntls = true\n'
            f'ca_file = "{tls_files.other_ca}"\n')))
        check = check_broker(cfg, timeout_s=5)
        assert check.level == FAIL and check.key == "mqtt.ca_file"
        assert check.message.startswith("mqtt.ca_file: ") and "not trusted" in check.message
    finally:
        broker.stop()
