"""Mosquitto's password file: one ``user:hash`` line per account.

Mosquitto 2 reads two hash formats and writes the first (``mosquitto_passwd``):

    $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt)>
    $6$<base64 salt>$<base64 SHA-512(password + salt)>         (Mosquitto 1.x)

:func:`hash_password` makes the first in Python, so a password never appears on a
command line (where every local user could read it in ``/proc``); the tests check that
a real Mosquitto accepts it and that :func:`verify_password` accepts what
``mosquitto_passwd`` writes. 101 iterations and a 12-byte salt are what
``mosquitto_passwd`` 2.0 uses; the passwords :func:`new_password` makes are 256
random bits, which no iteration count could make harder to guess.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from station.deploy.files import write_atomic

ITERATIONS = 101
SALT_BYTES = 12


class PasswordFileError(ValueError):
    """A password file line or hash that cannot be read; names the file and user."""


def new_password() -> str:
    """256 random bits, URL-safe (no ':' or newline, which the file format cannot hold)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches a ``$7$`` or ``$6$`` hash from a Mosquitto password file."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[:2] == ["", "7"]:
            salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
        elif len(parts) == 4 and parts[:2] == ["", "6"]:
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except ValueError:  # bad base64 or iteration count
        return False
    return hmac.compare_digest(got, want)


class PasswordFile:
    """The lines of a password file, changed in memory and saved atomically by :meth:`save`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            self.lines = []

    def _index(self, user: str) -> int | None:
        for i, line in enumerate(self.lines):
            if line.split(":", 1)[0] == user and ":" in line:
                return i
        return None

    def users(self) -> list[str]:
        return [line.split(":", 1)[0] for line in self.lines if ":" in line and not line.startswith("#")]

    def get(self, user: str) -> str | None:
        i = self._index(user)
        return None if i is None else self.lines[i].split(":", 1)[1].strip()

    def set(self, user: str, hashed: str) -> None:
        if not user or ":" in user or "\n" in user:
            raise PasswordFileError(f"{self.path}: user name {user!r} cannot be stored (no ':' or newline)")
        line = f"{user}:{hashed}"
        i = self._index(user)
        if i is None:
            self.lines.append(line)
        else:
            self.lines[i] = line

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def save(self) -> bool:
        """Write the file (new files: mode 0640, group mosquitto); False if nothing changed."""
        return write_atomic(self.path, self.text(), mode=0o640, group="mosquitto")
