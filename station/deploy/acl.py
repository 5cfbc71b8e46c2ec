"""The broker's ACL file (``deploy/mosquitto/acl``): who may read and write which topics.

Stations need no entry: ``pattern`` lines keyed on the user name (= station id) give
each station its own topics. Every other account gets a block naming its role:

    # role: researcher
    user anna
    topic read camtrap/v1/+/detection
    ...
    topic deny camtrap/v1/anna/#

The last line matters: patterns apply to every account, and Mosquitto checks ``deny``
before any grant, so without it a researcher could publish as a station named after her.
Blocks are only ever appended; a hand-edited file keeps its edits.
"""

from __future__ import annotations

from pathlib import Path

from station.deploy.files import write_atomic
from station.feed.topics import DEFAULT_PREFIX

PREFIX = DEFAULT_PREFIX
ROLES = ("station", "collector", "researcher", "operator")
FEED = ("detection", "status", "health", "thumbnail")

# What each role may do, besides the station patterns; topics are under PREFIX.
ROLE_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "collector": tuple(("read", f"+/{kind}") for kind in FEED),
    "researcher": tuple(("read", f"+/{kind}") for kind in FEED),
    "operator": (("write", "+/command/+"), ("read", "+/command_result"), ("read", "+/status"),
                 ("read", "+/health")),
}

# Equal to deploy/mosquitto/acl (a test checks), so provisioning works from an installed package too.
TEMPLATE = """\
# Mosquitto ACL for the camera-trap feed: /etc/mosquitto/camtrap/acl
# Maintained by `station provision` (docs/deployment.md); edit by hand with care.
# Checked against a real Mosquitto 2.0 by tests/test_broker_security.py.
#
# Stations: the account's user name is the station id (%u), so these patterns let each
# station write only its own topics and read only its own commands, with no entry per
# station. Mosquitto 2.0 accepts any SUBSCRIBE and checks read access when it delivers
# each message, so a station subscribed to '#' still receives only its own commands.
pattern write camtrap/v1/%u/detection
pattern write camtrap/v1/%u/status
pattern write camtrap/v1/%u/health
pattern write camtrap/v1/%u/thumbnail
pattern write camtrap/v1/%u/command_result
pattern read camtrap/v1/%u/command/+
#
# The patterns apply to every account, so each account that is not a station has a
# block below (added by `station provision --role ...`) ending in
#   topic deny camtrap/v1/<name>/#
# which Mosquitto checks before any grant: without it a researcher could publish as a
# station named after her. An account in the password file with no block here is a
# station.
#
# Roles:
#   collector   reads detection, status, health and thumbnail of every station
#               (also through a shared subscription, $share/<group>/camtrap/v1/+/...)
#   researcher  the same, read-only
#   operator    sends commands to any station, reads their results, status and health
"""


def role_block(name: str, role: str) -> str:
    if role not in ROLE_RULES:
        raise ValueError(f"role {role!r} has no ACL block (one of {', '.join(ROLE_RULES)})")
    lines = [f"# role: {role}", f"user {name}"]
    lines += [f"topic {access} {PREFIX}/{topic}" for access, topic in ROLE_RULES[role]]
    lines.append(f"topic deny {PREFIX}/{name}/#")
    return "\n".join(lines) + "\n"


class AclFile:
    """An ACL file in memory (the template when it does not exist yet); :meth:`save` writes it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.text = self.path.read_text()
        except FileNotFoundError:
            self.text = TEMPLATE

    def accounts(self) -> dict[str, str]:
        """Accounts with a ``user`` block and their role ("custom" for blocks written by hand)."""
        found: dict[str, str] = {}
        role = None
        for line in self.text.splitlines():
            if line.startswith("# role:"):
                role = line.split(":", 1)[1].strip()
            elif line.startswith("user "):
                found[line[5:].strip()] = role or "custom"
                role = None
            elif line.strip() and not line.startswith("#"):
                role = None
        return found

    def add(self, name: str, role: str) -> None:
        sep = "" if self.text.endswith("\n\n") or not self.text else ("\n" if self.text.endswith("\n") else "\n\n")
        self.text += sep + role_block(name, role)

    def save(self) -> bool:
        return write_atomic(self.path, self.text, mode=0o644)
