"""``station provision NAME``: a broker account and the files its owner installs from.

    station provision lazovsky-07 --host broker.example.org          # a station
    station provision --role collector collector --out /etc/camtrap   # the collector on this host
    station provision --role researcher anna                         # reads the generalised feed
    station provision --role researcher lab-gis --exact-locations    # ... and the exact one
    station provision --role operator ivan                           # sends commands

Run on the broker's host, as root. For every role it makes the account in the broker's
dynamic-security plugin (:mod:`station.deploy.dynsec`; ``--broker-dir``, default
``/etc/mosquitto/camtrap``) with a random 256-bit password, its client id bound to its
name, and the roles of its kind (:mod:`station.deploy.acl`); it writes the password to a
file only its owner can read. A running broker takes the change at once (no reload); a
stopped one reads it when it starts. In ``--out`` it writes:

    station      station.toml, mqtt-password, ca.crt    copied to the Pi: deploy/install-station.sh --bundle DIR
    collector    collector.toml, collector.password (+ ca.crt with TLS)
    researcher, operator
                 NAME.password (+ ca.crt with TLS)

Idempotent: run again, it changes nothing and keeps the password (it checks that the
saved one still matches the broker's hash); ``--rotate`` issues a new one. A config file
that exists is never rewritten. Every run also brings the broker's roles up to date.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from station.deploy import dynsec
from station.deploy.acl import EXACT_ROLE, KINDS as ROLES, kind_of
from station.deploy.configs import BrokerAccess, collector_config, station_config
from station.deploy.files import locked, write_atomic
from station.deploy.passwd import new_password
from station.vocabulary import ID_PATTERN as STATION_ID_PATTERN

DEFAULT_BROKER_DIR = Path("/etc/mosquitto/camtrap")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATION_TEMPLATE = PROJECT_ROOT / "deploy" / "station.example.toml"
COLLECTOR_TEMPLATE = PROJECT_ROOT / "deploy" / "collector.example.toml"
STATION_TARGET = Path("/etc/station")
"""Where deploy/install-station.sh puts the password and CA on the Pi; station.toml names them there."""

_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_STATION_ID = re.compile(STATION_ID_PATTERN)


class ProvisionError(ValueError):
    """Provisioning refused: the message says what is wrong and how to go on."""


@dataclass(frozen=True)
class Request:
    name: str
    role: str = "station"
    broker_dir: Path = DEFAULT_BROKER_DIR
    out: Path | None = None
    """Where the files are written (default: ./NAME)."""
    target_dir: Path | None = None
    """Where those files will live on the machine that uses them, as the config names them
    (default: /etc/station for a station, else ``out``)."""
    host: str | None = None
    port: int | None = None
    tls: bool | None = None
    ca_file: Path | None = None
    """The CA certificate clients check the broker against (default: BROKER_DIR/ca.crt)."""
    rotate: bool = False
    latitude: float | None = None
    longitude: float | None = None
    deployment_id: str | None = None
    template: Path | None = None
    exact_locations: bool | None = None
    """Researchers and operators: also read the exact-coordinates feed (None: leave as it is)."""
    create_broker_dir: bool = False
    """Make ``broker_dir`` when it does not exist (else a mistyped path is refused)."""
    control_host: str = "127.0.0.1"
    control_port: int | None = 1883
    """Where the running broker takes the plugin's commands (its loopback listener); None:
    never ask a broker, write the file (a broker installed into a folder, not running here)."""


@dataclass
class Report:
    name: str
    role: str
    password: str = "kept"
    """"new", "kept", "rotated" or "restored" (saved password put back into the broker's file)."""
    changes: list[str] = field(default_factory=list)
    """The plugin commands run (passwords left out)."""
    applied: str = "unchanged"
    """"unchanged", "live" (sent to the running broker) or "file" (read when the broker starts)."""
    store: Path | None = None
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: Path | None = None

    @property
    def broker_changed(self) -> bool:
        return bool(self.changes)


def _check_name(name: str, role: str) -> None:
    if role not in ROLES:
        raise ProvisionError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if role == "station" and not _STATION_ID.fullmatch(name):
        raise ProvisionError(f"station id {name!r} is not valid: 1-64 letters, digits, '_', '.', '-', "
                             "starting with a letter or digit (it is a topic level)")
    if not _ACCOUNT_NAME.fullmatch(name):
        raise ProvisionError(f"account name {name!r} is not valid: 1-64 letters, digits, '_', '.', '@', '-', "
                             "starting with a letter or digit")


def _check_request(req: Request) -> None:
    for key, value, limit in (("--latitude", req.latitude, 90), ("--longitude", req.longitude, 180)):
        if value is not None and not (-limit <= value <= limit):  # also refuses NaN
            raise ProvisionError(f"{key} {value}: must be between -{limit} and {limit} (WGS84 decimal degrees)")
    if (req.latitude is None) != (req.longitude is None):
        raise ProvisionError("--latitude and --longitude: give both or neither")
    if req.role != "station" and (req.latitude is not None or req.deployment_id is not None):
        raise ProvisionError(f"--latitude/--longitude/--deployment-id: only for stations, not a {req.role}")
    if req.exact_locations and req.role not in ("researcher", "operator"):
        raise ProvisionError(f"--exact-locations: only for researchers and operators, not a {req.role}")


def _defaults(req: Request) -> tuple[str, int, bool]:
    if req.role == "collector":  # the collector on the broker's host uses the loopback listener
        tls = bool(req.tls)
        return req.host or "127.0.0.1", req.port or (8883 if tls else 1883), tls
    tls = True if req.tls is None else req.tls
    return req.host or socket.getfqdn(), req.port or (8883 if tls else 1883), tls


def _password_name(role: str, name: str) -> str:
    return {"station": "mqtt-password", "collector": "collector.password"}.get(role, f"{name}.password")


def _choose_password(req: Request, stored: dict | None, saved: Path, report: Report) -> str | None:
    """The password to give the broker, or None when its hash already matches the saved one."""
    local = saved.read_text().splitlines()[0].strip() if saved.is_file() and saved.stat().st_size else None
    if req.rotate:
        report.password = "rotated" if stored else "new"
        return new_password()
    if stored is not None:
        if local is None:
            raise ProvisionError(f"{req.name} already has an account on the broker, but its password file "
                                 f"{saved} is missing: use the file made when it was provisioned "
                                 f"(--out), or --rotate to issue a new password")
        if not dynsec.verify(local, stored):
            raise ProvisionError(f"{saved} does not hold {req.name}'s password on the broker "
                                 f"({req.broker_dir / dynsec.STORE_DIR / dynsec.STORE_FILE}): --rotate issues a new one")
        return None
    if local is not None:
        report.password = "restored"
        return local
    report.password = "new"
    return new_password()


def _provision_account(req: Request, broker_dir: Path, saved: Path, report: Report) -> None:
    """The account in the plugin's store (see :mod:`station.deploy.dynsec`), under the lock."""
    path = broker_dir / dynsec.STORE_DIR / dynsec.STORE_FILE
    report.store = path
    try:
        store = dynsec.Store.read(path)
        if store.new:
            admin = dynsec.bootstrap(store, broker_dir)
            live = False
        else:
            admin = dynsec.admin_password(broker_dir)
            live = req.control_port is not None and dynsec.broker_listening(req.control_host, req.control_port)
        owner = kind_of(store.client_roles(req.name)) if store.client(req.name) else None
        if req.name == dynsec.roles.ADMIN_USER or owner == "admin":
            raise ProvisionError(f"{req.name} is the provisioning account; choose another name")
        if store.client(req.name) is not None and owner is None:
            raise ProvisionError(f"{req.name} is an account in {path} that provision did not make; choose "
                                 f"another name (or delete it with mosquitto_ctrl)")
        if owner not in (None, req.role):
            raise ProvisionError(f"{req.name} is already a {owner} account in {path}, not a {req.role}; "
                                 f"choose another name")
        stored = store.client(req.name)
        password = _choose_password(req, stored, saved, report)
        # Order: the saved password first, then the broker, so that a run cut short
        # anywhere is finished by running it again.
        if password is not None:
            write_atomic(saved, password + "\n", mode=0o600)
            report.written.append(saved)
        else:
            report.kept.append(saved)
        exact = req.exact_locations if req.role in ("researcher", "operator") else None
        commands = dynsec.plan(store, req.name, req.role, password, exact=exact)
        report.changes = dynsec.describe(commands)
        if live:
            dynsec.send(req.control_host, req.control_port, admin, commands)
            report.applied = "live" if commands else "unchanged"
            dynsec.ensure_private_dir(path.parent, store.notes)
        store.apply(commands)  # in memory: the broker's accounts after this run
        if not live and (store.save() or commands):
            report.applied = "file"
        report.notes += store.notes
        if EXACT_ROLE in store.client_roles(req.name):
            report.notes.append(f"{req.name} reads the exact-coordinates feed (--no-exact-locations revokes it)")
    except dynsec.DynsecError as exc:
        raise ProvisionError(str(exc)) from None


def _copy_ca(req: Request, out: Path, report: Report) -> Path | None:
    ca = req.ca_file or req.broker_dir / "ca.crt"
    if not ca.is_file():
        report.notes.append(f"no CA certificate at {ca}: clients will check the broker against the system's "
                            f"CAs (fine for a publicly trusted certificate); --ca-file names another")
        return None
    dest = out / "ca.crt"
    (report.written if write_atomic(dest, ca.read_bytes(), mode=0o644) else report.kept).append(dest)
    return dest


def _write_config(path: Path, text_of, report: Report) -> None:
    report.config = path
    if path.exists():
        report.kept.append(path)
        return
    write_atomic(path, text_of(), mode=0o600)
    report.written.append(path)


def provision(req: Request) -> Report:
    """Create (or check) one account and its files; see the module docstring."""
    _check_name(req.name, req.role)
    _check_request(req)
    out = Path(req.out) if req.out is not None else Path.cwd() / req.name
    report = Report(req.name, req.role)
    host, port, tls = _defaults(req)
    saved = out / _password_name(req.role, req.name)
    broker_dir = Path(req.broker_dir)
    if not broker_dir.is_dir():
        if not req.create_broker_dir:
            raise ProvisionError(f"--broker-dir {broker_dir}: no such folder (a typo? the broker's files are in "
                                 f"/etc/mosquitto/camtrap; --create-broker-dir makes a new one)")
        broker_dir.mkdir(mode=0o750, parents=True)
    with locked(broker_dir):
        _provision_account(req, broker_dir, saved, report)
    ca = _copy_ca(req, out, report) if tls else None
    target = Path(req.target_dir) if req.target_dir else (STATION_TARGET if req.role == "station" else out.absolute())
    access = BrokerAccess(host, port, req.name, target / saved.name, tls,
                          target / "ca.crt" if ca is not None else None)
    if req.role == "station":
        deployment = req.deployment_id or f"{req.name[:55]}-{date.today():%Y%m%d}"
        _write_config(out / "station.toml", lambda: station_config(
            req.template or STATION_TEMPLATE, req.name, deployment, access, req.latitude, req.longitude), report)
        if req.latitude is None or req.longitude is None:
            report.notes.append(f"set latitude and longitude in {out / 'station.toml'} (or --latitude/--longitude) "
                                f"before the station starts")
    elif req.role == "collector":
        _write_config(out / "collector.toml", lambda: collector_config(
            req.template or COLLECTOR_TEMPLATE, access), report)
    else:
        where = f"-h {host} -p {port}" + (f" --cafile {access.ca_file}" if access.ca_file else "")
        verb = "mosquitto_sub -v -q 1 -t 'camtrap/v1/_feed/generalised/+/detection'" if req.role == "researcher" else \
            "mosquitto_pub -q 1 -t camtrap/v1/STATION/command/snapshot -m '{...}'"
        report.notes.append(f"connect: {verb} {where} -u {req.name} -P \"$(cat {access.password_file})\" "
                            f"(the client id is always the account name)")
    return report


def summary(report: Report, broker_dir: Path) -> list[str]:
    """What happened, for the command line."""
    applied = {"unchanged": "unchanged", "live": "applied to the running broker (no reload needed)",
               "file": "written; the broker reads it when it starts (systemctl restart mosquitto if it runs "
                       "without it)"}[report.applied]
    lines = [f"{report.role} {report.name}: password {report.password}",
             f"  broker: {report.store or broker_dir} ({applied})"]
    lines += [f"  change: {c}" for c in report.changes]
    lines += [f"  wrote:  {p}" for p in report.written]
    lines += [f"  kept:   {p}" for p in report.kept]
    if report.role == "station":
        folder = report.config.parent if report.config else "DIR"
        lines.append(f"  then:   copy {folder}/ to the station and run: sudo deploy/install-station.sh --bundle DIR")
    lines += [f"  note:   {n}" for n in report.notes]
    return lines
