"""Accounts and roles in Mosquitto's dynamic-security plugin, changed live or on disk.

The plugin keeps every account (user name, password hash, bound client id, roles) and every
role's rules in one JSON file, ``BROKER_DIR/dynsec/dynamic-security.json``, which it reads
when the broker starts and rewrites after each change made through its control topic
(``$CONTROL/dynamic-security/v1``). Mosquitto 2.0.11 does not read it again on SIGHUP, so:

* **broker running** (its loopback listener answers): the changes are sent as plugin
  commands by the ``camtrap-admin`` account and take effect at once; the plugin saves them.
* **broker stopped**, or the file not made yet: the same commands are applied to the file
  here, and the broker reads it when it starts.

Either way :func:`plan` computes the commands from the file, so a run cut short is finished
by running it again. The first run makes the file: default access "deny", the admin account
(its password in ``BROKER_DIR/dynsec-admin.password``, root only), and the accounts of an
older ``passwd``/``acl`` pair, whose ``$7$`` hashes the plugin reads as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import secrets
import socket
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.deploy import acl as roles
from station.deploy.files import write_atomic

ITERATIONS = 101
SALT_BYTES = 12
STORE_DIR = "dynsec"
STORE_FILE = "dynamic-security.json"
ADMIN_PASSWORD_FILE = "dynsec-admin.password"
BROKER_USER = "mosquitto"


class DynsecError(ValueError):
    """The plugin's file or the running broker refused a change; the message says which and why."""


def hash_entry(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> dict[str, Any]:
    """The plugin's stored form of a password: PBKDF2-HMAC-SHA512, base64 digest and salt."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {"password": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "iterations": iterations}


def verify(password: str, client: dict[str, Any]) -> bool:
    try:
        salt, want = base64.b64decode(client["salt"]), base64.b64decode(client["password"])
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(client["iterations"]))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _acl_set(role: dict[str, Any]) -> set[roles.Acl]:
    return {roles.Acl(a["acltype"], a["topic"], bool(a.get("allow", True))) for a in role.get("acls", [])}


@dataclass
class Store:
    """The plugin's JSON document, as read from (or about to be written to) ``path``."""

    path: Path
    doc: dict[str, Any]
    new: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> "Store":
        try:
            doc = json.loads(Path(path).read_text())
        except FileNotFoundError:
            return cls(Path(path), {"clients": [], "groups": [], "roles": [],
                                    "defaultACLAccess": dict(roles.DEFAULT_ACCESS)}, new=True)
        except (OSError, ValueError) as exc:
            raise DynsecError(f"{path}: cannot read the broker's accounts: {exc}") from None
        if not isinstance(doc, dict):
            raise DynsecError(f"{path}: not the dynamic-security plugin's JSON (no object)")
        for key in ("clients", "groups", "roles"):
            doc.setdefault(key, [])
        return cls(Path(path), doc)

    def client(self, username: str) -> dict[str, Any] | None:
        return next((c for c in self.doc["clients"] if c.get("username") == username), None)

    def role(self, rolename: str) -> dict[str, Any] | None:
        return next((r for r in self.doc["roles"] if r.get("rolename") == rolename), None)

    def client_roles(self, username: str) -> list[str]:
        c = self.client(username)
        return [r["rolename"] for r in (c or {}).get("roles", [])]

    # -- the plugin's commands, applied to the document (the broker is not running) -----
    def apply(self, commands: list[dict[str, Any]]) -> None:
        for cmd in commands:
            getattr(self, "_" + cmd["command"])(cmd)

    def _setDefaultACLAccess(self, cmd: dict) -> None:  # noqa: N802 - the plugin's command names
        for entry in cmd["acls"]:
            self.doc.setdefault("defaultACLAccess", {})[entry["acltype"]] = bool(entry["allow"])

    def _createRole(self, cmd: dict) -> None:  # noqa: N802
        self.doc["roles"].append({"rolename": cmd["rolename"], "acls": []})

    def _addRoleACL(self, cmd: dict) -> None:  # noqa: N802
        self.role(cmd["rolename"])["acls"].append(
            {"acltype": cmd["acltype"], "topic": cmd["topic"], "priority": cmd.get("priority", 0),
             "allow": cmd["allow"]})

    def _removeRoleACL(self, cmd: dict) -> None:  # noqa: N802
        role = self.role(cmd["rolename"])
        role["acls"] = [a for a in role["acls"] if (a["acltype"], a["topic"]) != (cmd["acltype"], cmd["topic"])]

    def _createClient(self, cmd: dict) -> None:  # noqa: N802
        entry = {"username": cmd["username"], "textname": cmd.get("textname", ""), "clientid": cmd["clientid"],
                 "roles": list(cmd.get("roles", []))}
        entry.update(cmd["_hash"] if "_hash" in cmd else hash_entry(cmd["password"]))
        self.doc["clients"].append(entry)

    def _setClientPassword(self, cmd: dict) -> None:  # noqa: N802
        self.client(cmd["username"]).update(hash_entry(cmd["password"]))

    def _setClientId(self, cmd: dict) -> None:  # noqa: N802
        self.client(cmd["username"])["clientid"] = cmd["clientid"]

    def _addClientRole(self, cmd: dict) -> None:  # noqa: N802
        self.client(cmd["username"]).setdefault("roles", []).append({"rolename": cmd["rolename"]})

    def _removeClientRole(self, cmd: dict) -> None:  # noqa: N802
        c = self.client(cmd["username"])
        c["roles"] = [r for r in c.get("roles", []) if r["rolename"] != cmd["rolename"]]

    def save(self) -> bool:
        """Write the file for the broker to read at start: mode 0600, owned by the broker's user
        (as root), in a folder only that user may enter. Returns False when nothing changed."""
        ensure_private_dir(self.path.parent, self.notes)
        text = json.dumps(self.doc, indent="\t") + "\n"
        changed = write_atomic(self.path, text, mode=0o600, owner=BROKER_USER, force_mode=True)
        return changed


def ensure_private_dir(folder: Path, notes: list[str]) -> None:
    """``folder`` exists with mode 0700 and (as root) belongs to the broker's user: the plugin
    writes its file there (``.new`` then a rename) with the broker's umask, usually 0644."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if stat.S_IMODE(st.st_mode) & 0o077:
        notes.append(f"{folder}: mode {stat.S_IMODE(st.st_mode):04o} let others read the broker's accounts; "
                     f"now 0700")
        os.chmod(folder, 0o700)
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(BROKER_USER)
        except KeyError:
            return
        if (st.st_uid, st.st_gid) != (user.pw_uid, user.pw_gid):
            os.chown(folder, user.pw_uid, user.pw_gid)


# -- what to change ------------------------------------------------------------------------
def _role_commands(store: Store, rolename: str) -> list[dict[str, Any]]:
    want = set(roles.role_acls(rolename))
    role = store.role(rolename)
    out: list[dict[str, Any]] = []
    if role is None:
        out.append({"command": "createRole", "rolename": rolename})
        have: set[roles.Acl] = set()
    else:
        have = _acl_set(role)
    for a in sorted(have - want):
        if not any((a.acltype, a.topic) == (w.acltype, w.topic) for w in want):
            out.append({"command": "removeRoleACL", "rolename": rolename, "acltype": a.acltype, "topic": a.topic})
    for a in sorted(want - have):
        if any((a.acltype, a.topic) == (h.acltype, h.topic) for h in have):  # same rule, other verdict
            out.append({"command": "removeRoleACL", "rolename": rolename, "acltype": a.acltype, "topic": a.topic})
        out.append({"command": "addRoleACL", "rolename": rolename, **a.as_dict()})
    return out


def plan(store: Store, username: str, kind: str, password: str | None, *, exact: bool | None = None) -> list[dict]:
    """The plugin commands that bring ``store`` to: default access denied, every role
    provision knows as :func:`station.deploy.acl.role_acls` says (the shared ones, and those
    of the stations it holds), and ``username`` an account of ``kind`` whose client id is its
    user name, with ``password`` (None: keep the stored one) and the exact feed when ``exact``
    (None: as it is)."""
    cmds: list[dict[str, Any]] = []
    default = store.doc.get("defaultACLAccess", {})
    wrong = [k for k, v in roles.DEFAULT_ACCESS.items() if default.get(k) is not v]
    if wrong:
        cmds.append({"command": "setDefaultACLAccess",
                     "acls": [{"acltype": k, "allow": roles.DEFAULT_ACCESS[k]} for k in wrong]})
    wanted_roles = list(roles.SHARED_ROLES)
    wanted_roles += sorted({r["rolename"] for c in store.doc["clients"] for r in c.get("roles", [])
                            if r["rolename"].startswith("camtrap-station-")})
    current = store.client(username)
    held = store.client_roles(username)
    if exact is None:
        exact = roles.EXACT_ROLE in held
    mine = roles.roles_of(username, kind, exact)
    for r in mine:
        if r not in wanted_roles:
            wanted_roles.append(r)
    for r in wanted_roles:
        cmds += _role_commands(store, r)
    if current is None:
        if password is None:
            raise DynsecError(f"{username}: a new account needs a password")
        cmds.append({"command": "createClient", "username": username, "password": password, "clientid": username,
                     "textname": f"camtrap {kind}", "roles": [{"rolename": r} for r in mine]})
        return cmds
    if password is not None:
        cmds.append({"command": "setClientPassword", "username": username, "password": password})
    if current.get("clientid") != username:
        cmds.append({"command": "setClientId", "username": username, "clientid": username})
    for r in mine:
        if r not in held:
            cmds.append({"command": "addClientRole", "username": username, "rolename": r})
    for r in held:
        if r not in mine and r.startswith("camtrap-"):
            cmds.append({"command": "removeClientRole", "username": username, "rolename": r})
    return cmds


def describe(commands: list[dict[str, Any]]) -> list[str]:
    """One line per command, passwords left out, for the summary."""
    out = []
    for c in commands:
        what = c.get("username") or c.get("rolename") or ""
        extra = f" {c['acltype']} {c['topic']}" if "acltype" in c and "topic" in c else ""
        out.append(f"{c['command']} {what}{extra}".rstrip())
    return out


# -- the running broker --------------------------------------------------------------------
def broker_listening(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def send(host: str, port: int, admin_password: str, commands: list[dict[str, Any]],
         timeout: float = 10.0) -> None:
    """Send ``commands`` to the running broker's plugin as ``camtrap-admin`` and check every answer."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    if not commands:
        return
    wire = [{k: v for k, v in c.items() if not k.startswith("_")} for c in commands]
    done = threading.Event()
    state: dict[str, Any] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=roles.ADMIN_USER, protocol=mqtt.MQTTv5)
    client.username_pw_set(roles.ADMIN_USER, admin_password)

    def on_connect(c, userdata, flags, reason, properties):
        state["connack"] = reason
        if reason.is_failure:
            done.set()
        else:
            c.subscribe(roles.CONTROL_RESPONSE, qos=1)

    def on_subscribe(c, userdata, mid, codes, properties):
        if codes[0].is_failure:
            state["error"] = f"subscription to {roles.CONTROL_RESPONSE} refused: {codes[0]}"
            done.set()
        else:
            c.publish(roles.CONTROL_TOPIC, json.dumps({"commands": wire}), qos=1)

    def on_message(c, userdata, msg):
        state["response"] = msg.payload
        done.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    where = f"the broker at {host}:{port}"
    try:
        client.connect(host, port, 30)
    except OSError as exc:
        raise DynsecError(f"{where}: cannot connect ({exc})") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise DynsecError(f"{where}: no answer from the dynamic-security plugin in {timeout:.0f} s "
                              f"(is the plugin line of camtrap.conf in force? restart mosquitto)")
    finally:
        client.disconnect()
        client.loop_stop()
    if state.get("connack") is not None and state["connack"].is_failure:
        raise DynsecError(f"{where} refused the {roles.ADMIN_USER} account ({state['connack']}): it is not "
                          f"running with the dynamic-security plugin and this file; restart mosquitto "
                          f"(systemctl restart mosquitto) so that it loads camtrap.conf")
    if "error" in state:
        raise DynsecError(f"{where}: {state['error']}")
    try:
        answers = json.loads(state["response"])["responses"]
    except (KeyError, ValueError, TypeError):
        raise DynsecError(f"{where}: the plugin's answer cannot be read: {state.get('response')!r:.200}") from None
    failed = [f"{cmd['command']} {cmd.get('username') or cmd.get('rolename') or ''}: {a['error']}"
              for cmd, a in zip(commands, answers) if a.get("error")]
    if failed:
        raise DynsecError(f"{where} refused: " + "; ".join(failed))


# -- the first run ------------------------------------------------------------------------
def bootstrap(store: Store, broker_dir: Path) -> str:
    """A new store: the admin account (its password saved root-only), and the accounts of a
    ``passwd``/``acl`` pair from before the plugin. Returns the admin password."""
    admin_file = broker_dir / ADMIN_PASSWORD_FILE
    admin = secrets.token_urlsafe(32)
    write_atomic(admin_file, admin + "\n", mode=0o600, force_mode=True)
    cmds = plan(store, roles.ADMIN_USER, "admin", admin)
    store.apply(cmds)
    store.notes.append(f"made {store.path} with every access denied by default, the roles, and the provisioning "
                       f"account {roles.ADMIN_USER} (password: {admin_file}, root only)")
    _import_legacy(store, broker_dir)
    return admin


def admin_password(broker_dir: Path) -> str:
    path = broker_dir / ADMIN_PASSWORD_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise DynsecError(f"{path} is missing: provisioning needs the {roles.ADMIN_USER} account's password "
                          f"(it was written when {STORE_DIR}/{STORE_FILE} was made)") from None
    if not text:
        raise DynsecError(f"{path} is empty")
    return text.splitlines()[0]


def _legacy_roles(acl_text: str) -> dict[str, str]:
    """Accounts with a ``user`` block in an old ACL file, and the role its ``# role:`` line named."""
    found: dict[str, str] = {}
    role = None
    for line in acl_text.splitlines():
        if line.startswith("# role:"):
            role = line.split(":", 1)[1].strip()
        elif line.startswith("user "):
            found[line[5:].strip()] = role or "custom"
            role = None
        elif line.strip() and not line.startswith("#"):
            role = None
    return found


def _import_legacy(store: Store, broker_dir: Path) -> None:
    passwd = broker_dir / "passwd"
    if not passwd.is_file():
        return
    try:
        blocks = _legacy_roles((broker_dir / "acl").read_text())
    except FileNotFoundError:
        blocks = {}
    for line in passwd.read_text().splitlines():
        if ":" not in line or line.startswith("#"):
            continue
        user, hashed = line.split(":", 1)
        parts = hashed.strip().split("$")
        kind = blocks.get(user, "station")
        if kind not in roles.KINDS:
            store.notes.append(f"{passwd}: {user} has a hand-written ACL block; not imported (provision it again)")
            continue
        if len(parts) != 5 or parts[:2] != ["", "7"] or store.client(user) is not None:
            store.notes.append(f"{passwd}: {user} has no $7$ hash; not imported (provision it with --rotate)")
            continue
        cmds = plan(store, user, kind, "unused")
        create = cmds[-1]
        create["_hash"] = {"password": parts[4], "salt": parts[3], "iterations": int(parts[2])}
        store.apply(cmds)
        store.notes.append(f"imported {kind} {user} from {passwd}")
    if stat.S_IMODE(passwd.stat().st_mode) & 0o027:
        os.chmod(passwd, 0o640)
        store.notes.append(f"{passwd}: no longer used by the broker; mode tightened to 0640")

