"""Who may read and write which topics: the broker's roles, one table for every account kind.

The broker checks them with Mosquitto's dynamic-security plugin (:mod:`station.deploy.dynsec`).
Each account is a plugin *client* whose client id is bound to its user name, holding roles:

    camtrap-station-<id>     one per station: writes its own feed, reads its own commands
    camtrap-collector        reads every station's feed, also as a member of a shared
                             subscription ($share/<group>/...); writes the republished feed;
                             asks stations for a snapshot (the dashboard's "a picture now")
                             and reads their command results
    camtrap-researcher       reads the republished feed with generalised coordinates, and
                             status and health (neither carries a coordinate)
    camtrap-exact-locations  adds the republished feed with exact coordinates (trusted accounts:
                             ``station provision --exact-locations``)
    camtrap-operator         sends commands, reads their results, status, health and the
                             generalised republished feed
    camtrap-admin            the provisioning account: the plugin's $CONTROL topic only

Everything not granted is denied (:data:`DEFAULT_ACCESS`), SUBSCRIBE included: unlike
``acl_file``, the plugin checks a SUBSCRIBE against the whole filter as sent, so only a role
granted ``$share/+/...`` can join a shared subscription. Mosquitto 2.0.11's plugin does not
expand ``%u`` in publish rules, hence one role per station with its own topics written out.

A kind gets a new permission (the receipts stations will read, say) by a line in
:func:`role_acls`; ``station provision`` brings the broker's roles up to date on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.feed.topics import DEFAULT_PREFIX, FEED_LEVEL

PREFIX = DEFAULT_PREFIX
KINDS = ("station", "collector", "researcher", "operator")
"""Account kinds ``station provision --role`` makes."""
FEED = ("detection", "status", "health", "thumbnail")
STATION_WRITES = ("detection", "status", "health", "thumbnail", "command_result")

SHARED_ROLES = ("camtrap-collector", "camtrap-researcher", "camtrap-exact-locations", "camtrap-operator",
                "camtrap-admin")
EXACT_ROLE = "camtrap-exact-locations"
ADMIN_ROLE = "camtrap-admin"
ADMIN_USER = "camtrap-admin"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE = "$CONTROL/dynamic-security/v1/response"

DEFAULT_ACCESS = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False,
                  "unsubscribe": True}


@dataclass(frozen=True, order=True)
class Acl:
    """One rule of a role, as the plugin stores it."""

    acltype: str     # publishClientSend, publishClientReceive, subscribePattern, subscribeLiteral
    topic: str
    allow: bool = True

    def as_dict(self) -> dict:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow}


def _read(topic: str) -> list[Acl]:
    """Subscribe to ``topic`` (a filter) and receive what matches it."""
    return [Acl("subscribePattern", topic), Acl("publishClientReceive", topic)]


def _write(topic: str) -> list[Acl]:
    return [Acl("publishClientSend", topic)]


def _shared_read(topic: str) -> list[Acl]:
    """Join any shared subscription group on ``topic``: ``$share/<group>/<topic>``."""
    return [Acl("subscribePattern", f"$share/+/{topic}")]


def station_role(station_id: str) -> str:
    return f"camtrap-station-{station_id}"


def role_acls(role: str) -> list[Acl]:
    """The rules of a role (see the module docstring), sorted."""
    p = PREFIX
    if role.startswith("camtrap-station-"):
        sid = role[len("camtrap-station-"):]
        rules = [a for kind in STATION_WRITES for a in _write(f"{p}/{sid}/{kind}")]
        rules += _read(f"{p}/{sid}/command/+")
    elif role == "camtrap-collector":
        rules = [a for kind in FEED for a in _read(f"{p}/+/{kind}")]
        rules += [a for kind in ("detection", "thumbnail") for a in _shared_read(f"{p}/+/{kind}")]
        rules += _write(f"{p}/{FEED_LEVEL}/#")
        rules += _write(f"{p}/+/command/snapshot") + _read(f"{p}/+/command_result")  # snapshot only, not reload
    elif role == "camtrap-researcher":
        rules = _read(f"{p}/{FEED_LEVEL}/generalised/#") + _read(f"{p}/+/status") + _read(f"{p}/+/health")
    elif role == EXACT_ROLE:
        rules = _read(f"{p}/{FEED_LEVEL}/exact/#")
    elif role == "camtrap-operator":
        rules = _write(f"{p}/+/command/+") + _read(f"{p}/+/command_result") + _read(f"{p}/+/status") \
            + _read(f"{p}/+/health") + _read(f"{p}/{FEED_LEVEL}/generalised/#")
    elif role == ADMIN_ROLE:
        rules = [Acl("publishClientSend", "$CONTROL/dynamic-security/#"),
                 Acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
                 Acl("subscribeLiteral", CONTROL_RESPONSE)]
    else:
        raise ValueError(f"role {role!r} is not one of camtrap-station-<id>, {', '.join(SHARED_ROLES)}")
    return sorted(set(rules))


def roles_of(name: str, kind: str, exact: bool = False) -> list[str]:
    """The roles an account of ``kind`` holds."""
    if kind == "station":
        return [station_role(name)]
    if kind == "admin":
        return [ADMIN_ROLE]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: use one of {', '.join(KINDS)}")
    return [f"camtrap-{kind}"] + ([EXACT_ROLE] if exact else [])


def kind_of(roles: list[str]) -> str | None:
    """The account kind its roles say (None: not an account provision made)."""
    for role in roles:
        if role.startswith("camtrap-station-"):
            return "station"
        if role == ADMIN_ROLE:
            return "admin"
        if role.startswith("camtrap-") and role[len("camtrap-"):] in KINDS:
            return role[len("camtrap-"):]
    return None
