"""Configuration: every error names the key, the bad value and what is allowed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from station.config import ConfigError, load_config, parse_config
from tests.conftest import EXAMPLE_CONFIG, ROOT

GOOD_STATION = {"id": "s1", "deployment_id": "d1", "latitude": 43.0, "longitude": 134.0}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x.toml")
    return info.value.problems


def test_the_shipped_example_is_valid():
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.station.id == "lazovsky-07"
    assert cfg.station.feature_type == "trailGame"
    assert cfg.camera.uri == "picamera2"


def test_defaults_fill_everything_but_identity():
    cfg = parse_config({"station": GOOD_STATION})
    assert cfg.events.pre_trigger_s > 0
    assert cfg.motion.threshold == 20 or cfg.motion.threshold > 0


def test_missing_identity_is_named():
    found = problems({"station": {"id": "s1"}})
    assert "station.deployment_id: required key is missing" in found
    assert "station.latitude: required key is missing" in found


def test_out_of_range_value_names_key_value_and_limit():
    (msg,) = problems({"station": GOOD_STATION, "motion": {"threshold": 300}})
    assert msg.startswith("motion.threshold = 300")
    assert "255" in msg


def test_typo_in_a_key_lists_the_allowed_keys():
    (msg,) = problems({"station": GOOD_STATION, "events": {"pre_triger_s": 3}})
    assert msg.startswith("events.pre_triger_s: unknown key")
    assert "pre_trigger_s" in msg


def test_unknown_section_is_refused():
    (msg,) = problems({"station": GOOD_STATION, "mqtt_typo": {}})
    assert msg.startswith("mqtt_typo: unknown key")


def test_bad_choice_lists_the_choices():
    (msg,) = problems({"station": GOOD_STATION, "camera": {"speed": "fast"}})
    assert "'realtime' or 'max'" in msg


def test_station_id_must_be_safe_for_mqtt_topics():
    (msg,) = problems({"station": {**GOOD_STATION, "id": "a/b#"}})
    assert msg.startswith("station.id = 'a/b#'")


def test_mask_polygons_are_checked():
    found = problems({"station": GOOD_STATION, "motion": {"masks": [[[0, 0], [1.5, 0], [1, 1]]]}})
    assert "outside the frame" in found[0]
    found = problems({"station": GOOD_STATION, "motion": {"masks": [[[0, 0], [1, 0]]]}})
    assert "at least 3" in found[0]


def test_even_blur_kernel_is_refused():
    (msg,) = problems({"station": GOOD_STATION, "motion": {"blur": 4}})
    assert "odd" in msg


def test_all_problems_are_reported_at_once():
    found = problems({"station": {**GOOD_STATION, "latitude": 91}, "camera": {"fps": 0}, "events": {"cooldown_s": -1}})
    assert len(found) == 3


def test_toml_syntax_error_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[station\nid = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value) and "file not found" in str(info.value)


def test_overrides_are_validated_too(config_file: Path):
    with pytest.raises(ConfigError) as info:
        load_config(config_file, {"camera": {"speed": "warp"}})
    assert "camera.speed = 'warp'" in str(info.value)


def test_config_check_command_prints_the_same(tmp_path: Path, station_cmd):
    path = tmp_path / "bad.toml"
    path.write_text('[station]\nid = "s1"\ndeployment_id = "d1"\nlatitude = 43\nlongitude = 200\n')
    out = subprocess.run([*station_cmd, "config", "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "station.longitude = 200" in out.stderr
    ok = subprocess.run([*station_cmd, "config", "check", str(EXAMPLE_CONFIG)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout


def test_daemon_refuses_to_start_half_configured(tmp_path: Path, station_cmd):
    path = tmp_path / "half.toml"
    path.write_text('[station]\nid = "s1"\n')
    out = subprocess.run([*station_cmd, "run", "--config", str(path), "--duration", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "station.deployment_id: required key is missing" in out.stderr
    assert not (tmp_path / "data").exists()


# -- the collector's config ---------------------------------------------------------------

def test_the_example_collector_config_is_valid_and_its_defaults_hold():
    from station.config.collector import load_collector_config

    cfg = load_collector_config(ROOT / "deploy" / "collector.example.toml")
    assert cfg.mqtt.clean_start is False and cfg.mqtt.protocol == "5"
    assert cfg.privacy.grid_deg == 0.1 and cfg.privacy.scope == "all"
    assert cfg.collector.sqlite_resolved_url() == "sqlite:////var/lib/camtrap-collector/collector.sqlite3"


def test_collector_config_errors_name_each_key(tmp_path):
    from station.config.collector import load_collector_config

    bad = tmp_path / "collector.toml"
    bad.write_text('[collector]\ndatabase_url = "mysql://x"\nbatchmax = 5\n[http]\ntimezone = "Asia/Vladivostock"\n'
                   '[mqtt]\nshared_group = "a/b"\n[alerts]\ntags = ["leopard", "dragon"]\n')
    with pytest.raises(ConfigError) as err:
        load_collector_config(bad)
    text = str(err.value)
    for key in ("collector.database_url", "collector.batchmax: unknown key", "http.timezone",
                "mqtt.shared_group", "alerts.tags.1"):
        assert key in text, (key, text)


# -- hardening (issue 15): values TOML can spell but a station must not take --------------

def test_quoted_switches_and_numbers_are_refused_naming_each_key():
    found = problems({"station": GOOD_STATION, "mqtt": {"enabled": "no", "tls": "yes", "port": "1883"},
                      "classifier": {"threads": 2.0}})
    assert "mqtt.enabled = 'no': Input should be a valid boolean (write true or false, without quotes)" in found
    assert "mqtt.tls = 'yes': Input should be a valid boolean (write true or false, without quotes)" in found
    assert "mqtt.port = '1883': Input should be a valid integer (write a whole number, without quotes)" in found
    assert any(p.startswith("classifier.threads = 2.0:") for p in found)
    assert len(found) == 4


def test_real_toml_types_still_pass_where_toml_has_no_type_of_its_own(tmp_path):
    cfg = parse_config({"station": GOOD_STATION, "storage": {"min_free_mb": 500, "data_dir": str(tmp_path)},
                        "camera": {"main_size": [640, 360]}, "motion": {"masks": [[[0, 0], [0.5, 0], [0.5, 1]]]}})
    assert cfg.storage.min_free_mb == 500.0 and cfg.camera.main_size == (640, 360)
    assert cfg.storage.data_dir == tmp_path and cfg.motion.masks[0][1] == (0.5, 0.0)


def test_infinite_or_absurd_disk_limits_are_refused():
    (msg,) = problems({"station": GOOD_STATION, "storage": {"min_free_mb": 1e30}})
    assert msg.startswith("storage.min_free_mb = 1e+30: Input should be less than or equal to")
    (msg,) = problems({"station": GOOD_STATION, "storage": {"max_size_mb": float("inf")}})
    assert msg == "storage.max_size_mb = inf: Input should be a finite number"


def test_a_data_dir_that_is_not_a_folder_is_refused(tmp_path):
    (msg,) = problems({"station": GOOD_STATION, "storage": {"data_dir": "/dev/null"}})
    assert msg == "storage.data_dir = '/dev/null': not a folder (a device or special file)"
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    (msg,) = problems({"station": GOOD_STATION, "storage": {"data_dir": str(afile / "events")}})
    assert msg == f"storage.data_dir = '{afile / 'events'}': not a folder: {afile} is a file"


def test_a_relative_data_dir_is_taken_from_where_the_station_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_config({"station": GOOD_STATION, "storage": {"data_dir": "ev"}})
    assert cfg.storage.data_dir == tmp_path / "ev"
    assert cfg.mqtt.outbox_file(cfg.storage.data_dir) == tmp_path / "ev" / "outbox.sqlite3"


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path, config_file):
    bom = tmp_path / "notepad.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + config_file.read_bytes())
    assert load_config(bom).station.id == "test-01"


def _check(tmp_path: Path, station_cmd, extra: str, camera: str = "synthetic:3"):
    from tests.conftest import minimal_toml

    path = tmp_path / "check.toml"
    path.write_text(minimal_toml(tmp_path / "data", camera=camera, extra=extra))
    return subprocess.run([*station_cmd, "config", "check", str(path)], capture_output=True, text=True, timeout=60)


def test_config_check_names_a_model_file_that_is_not_there(tmp_path, station_cmd):
    out = _check(tmp_path, station_cmd, '[classifier]\nmodel = "/nonexistent/leopard.tflite"\n')
    assert out.returncode == 2
    assert "classifier.model = '/nonexistent/leopard.tflite': file not found" in out.stderr
    assert "OK" not in out.stdout
    off = _check(tmp_path, station_cmd, '[classifier]\nenabled = false\nmodel = "/nonexistent/leopard.tflite"\n')
    assert off.returncode == 0, off.stderr


def test_config_check_refuses_a_floor_bigger_than_the_disk(tmp_path, station_cmd, tmpfs):
    disk = tmpfs("2m")
    from tests.conftest import minimal_toml

    path = tmp_path / "floor.toml"
    path.write_text(minimal_toml(disk).replace("min_free_mb = 0", "min_free_mb = 100"))
    out = subprocess.run([*station_cmd, "config", "check", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"storage.min_free_mb = 100: the disk under {disk} holds only 2 MB" in out.stderr


def test_config_check_never_prints_a_camera_password(tmp_path, station_cmd):
    out = _check(tmp_path, station_cmd, "", camera="rtsp://ranger:s3cret@10.0.0.5:554/stream1")
    assert out.returncode == 0, out.stderr
    assert "s3cret" not in out.stdout + out.stderr
    assert "camera rtsp://***@10.0.0.5:554/stream1" in out.stdout


def test_a_quoted_date_time_is_still_a_date_time(tmp_path):
    cfg = parse_config({"station": {**GOOD_STATION, "deployment_start": "2026-11-01T08:00:00Z"},
                        "camera": {"start_time": "2026-11-01T18:00:00Z"}})
    assert cfg.camera.start_time.hour == 18 and cfg.station.deployment_start.hour == 8
