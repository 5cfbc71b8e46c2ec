"""``station provision NAME``: a broker account and the files its owner installs from.

    station provision lazovsky-07 --host broker.example.org          # a station
    station provision --role collector collector --out /etc/camtrap   # the collector on this host
    station provision --role researcher anna                         # read-only
    station provision --role operator ivan                           # sends commands

Run on the broker's host, as root. For every role it adds the account to the broker's
password file (``--broker-dir``, default ``/etc/mosquitto/camtrap``) with a random
256-bit password, and writes that password to a file only its owner can read. Stations
need no ACL entry (pattern rules cover them, :mod:`station.deploy.acl`); the other roles
get their block. In ``--out`` it writes:

    station      station.toml, mqtt-password, ca.crt    copied to the Pi: deploy/install-station.sh --bundle DIR
    collector    collector.toml, collector.password (+ ca.crt with TLS)
    researcher, operator
                 NAME.password (+ ca.crt with TLS)

Idempotent: run again, it changes nothing and keeps the password (it checks that the
saved one still matches the broker's hash); ``--rotate`` issues a new one. A config file
that exists is never rewritten. The broker reads new accounts on a reload
(``systemctl reload mosquitto``), which :func:`provision` leaves to the caller.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from station.deploy.acl import ROLES, AclFile
from station.deploy.configs import BrokerAccess, collector_config, station_config
from station.deploy.files import locked, write_atomic
from station.deploy.passwd import PasswordFile, hash_password, new_password, verify_password
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


@dataclass
class Report:
    name: str
    role: str
    password: str = "kept"
    """"new", "kept", "rotated" or "restored" (saved password put back into the broker's file)."""
    acl: str = "unchanged"
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: Path | None = None

    @property
    def broker_changed(self) -> bool:
        return self.password != "kept" or self.acl != "unchanged"


def _check_name(name: str, role: str) -> None:
    if role not in ROLES:
        raise ProvisionError(f"role {role!r}: use one of {', '.join(ROLES)}")
    if role == "station" and not _STATION_ID.fullmatch(name):
        raise ProvisionError(f"station id {name!r} is not valid: 1-64 letters, digits, '_', '.', '-', "
                             "starting with a letter or digit (it is a topic level)")
    if not _ACCOUNT_NAME.fullmatch(name):
        raise ProvisionError(f"account name {name!r} is not valid: 1-64 letters, digits, '_', '.', '@', '-', "
                             "starting with a letter or digit")


def _defaults(req: Request) -> tuple[str, int, bool]:
    if req.role == "collector":  # the collector on the broker's host uses the loopback listener
        tls = bool(req.tls)
        return req.host or "127.0.0.1", req.port or (8883 if tls else 1883), tls
    tls = True if req.tls is None else req.tls
    return req.host or socket.getfqdn(), req.port or (8883 if tls else 1883), tls


def _password_name(role: str, name: str) -> str:
    return {"station": "mqtt-password", "collector": "collector.password"}.get(role, f"{name}.password")


def _choose_password(req: Request, stored_hash: str | None, saved: Path, report: Report) -> str | None:
    """The password to (re)hash into the broker's file, or None when nothing must change."""
    local = saved.read_text().splitlines()[0].strip() if saved.is_file() and saved.stat().st_size else None
    if req.rotate:
        report.password = "rotated" if stored_hash else "new"
        return new_password()
    if stored_hash is not None:
        if local is None:
            raise ProvisionError(f"{req.name} already has an account on the broker, but its password file "
                                 f"{saved} is missing: use the file made when it was provisioned "
                                 f"(--out), or --rotate to issue a new password")
        if not verify_password(local, stored_hash):
            raise ProvisionError(f"{saved} does not hold {req.name}'s password on the broker "
                                 f"({req.broker_dir / 'passwd'}): --rotate issues a new one")
        return None
    if local is not None:
        report.password = "restored"
        return local
    report.password = "new"
    return new_password()


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
    out = Path(req.out) if req.out is not None else Path.cwd() / req.name
    report = Report(req.name, req.role)
    host, port, tls = _defaults(req)
    saved = out / _password_name(req.role, req.name)
    broker_dir = Path(req.broker_dir)
    with locked(broker_dir):
        passwd = PasswordFile(broker_dir / "passwd")
        acl = AclFile(broker_dir / "acl")
        owner_role = acl.accounts().get(req.name)
        stored = passwd.get(req.name)
        if req.role == "station" and owner_role is not None:
            raise ProvisionError(f"{req.name} is a {owner_role} account in {acl.path}, not a station")
        if req.role != "station" and owner_role is None and stored is not None:
            raise ProvisionError(f"{req.name} is a station account (in {passwd.path} with no block in "
                                 f"{acl.path}); choose another name")
        if req.role != "station" and owner_role not in (None, req.role):
            raise ProvisionError(f"{req.name} is already a {owner_role} account in {acl.path}; "
                                 f"edit that file to change its role")
        password = _choose_password(req, stored, saved, report)
        # Order: the saved password first, then the ACL, then the broker's hash, so that a
        # run cut short anywhere is finished by running it again.
        if password is not None:
            write_atomic(saved, password + "\n", mode=0o600)
            report.written.append(saved)
        else:
            report.kept.append(saved)
        if req.role != "station" and owner_role is None:
            acl.add(req.name, req.role)
            report.acl = "added"
        if acl.save() and report.acl == "unchanged":
            report.acl = "created"
        if password is not None:
            passwd.set(req.name, hash_password(password))
        passwd.save()
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
        verb = "mosquitto_sub -v -q 1 -t 'camtrap/v1/+/detection'" if req.role == "researcher" else \
            "mosquitto_pub -q 1 -t camtrap/v1/STATION/command/snapshot -m '{...}'"
        report.notes.append(f"connect: {verb} {where} -u {req.name} -P \"$(cat {access.password_file})\"")
    return report


def summary(report: Report, broker_dir: Path) -> list[str]:
    """What happened, for the command line."""
    acl = {"unchanged": "unchanged", "added": f"block for {report.name} added", "created": "created"}[report.acl]
    if report.role == "station" and report.acl == "unchanged":
        acl = "no entry needed: the station patterns cover it"
    lines = [f"{report.role} {report.name}: password {report.password}",
             f"  broker: {broker_dir / 'passwd'} ({'updated' if report.password != 'kept' else 'unchanged'}), "
             f"{broker_dir / 'acl'} ({acl})"]
    lines += [f"  wrote:  {p}" for p in report.written]
    lines += [f"  kept:   {p}" for p in report.kept]
    if report.broker_changed:
        lines.append("  next:   systemctl reload mosquitto   (the broker reads accounts and ACLs on reload)")
    if report.role == "station":
        folder = report.config.parent if report.config else "DIR"
        lines.append(f"  then:   copy {folder}/ to the station and run: sudo deploy/install-station.sh --bundle DIR")
    lines += [f"  note:   {n}" for n in report.notes]
    return lines
