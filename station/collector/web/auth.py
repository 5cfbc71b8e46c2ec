"""Bearer tokens: who may see exact coordinates (and, with ``public = false``, anything),
and who may verify events.

The token file holds one token per line; blank lines and '#' comments are skipped. A line
is ``TOKEN`` (reads: exact coordinates) or ``NAME TOKEN`` (reads, and verifies events as
NAME: the name is recorded with each verification and exported as Camtrap DP's
``classifiedBy``). The name comes from this file, never from a request, so nobody can
verify under another's name. It is re-read when it changes, so a token is added or revoked
without a restart. Tokens are compared with :func:`hmac.compare_digest`, every one of
them, so the time a check takes does not tell how much of a guess was right.
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

MIN_TOKEN_LENGTH = 16
NAME = re.compile(r"[^\W_][\w.@+-]{0,63}")
"""A verifier's name: one word of up to 64 letters, digits and ._@+- (anna, a.petrova, 0000-0002-1825-0097)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: ``exact`` with a valid token; ``name`` when that token is named (may verify)."""
    exact: bool
    name: str | None = None


class Forbidden(Exception):
    """A valid token that may not do this (an unnamed token asked to verify)."""


class TokenFileError(RuntimeError):
    """The token file cannot be read or holds a token too short to be safe."""


class Unauthorized(Exception):
    """The request must not be answered: ``str()`` says why, ``error`` is RFC 6750's code."""

    def __init__(self, message: str, error: str | None = None):
        super().__init__(message)
        self.error = error


def read_tokens(path: Path) -> tuple[tuple[str | None, bytes], ...]:
    """(name or None, token) of every line of the token file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"http.token_file {path}: cannot read it: {exc}") from None
    tokens = []
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"http.token_file {path}, line {number}"
        if len(words) > 2:
            raise TokenFileError(f"{where}: a line is TOKEN, or NAME TOKEN for a researcher who verifies")
        name, token = (None, words[0]) if len(words) == 1 else words
        if len(token) < MIN_TOKEN_LENGTH:
            raise TokenFileError(f"{where}: a token is one word of at least {MIN_TOKEN_LENGTH} characters "
                                 f"(e.g. from: openssl rand -hex 24)")
        if name is not None and not NAME.fullmatch(name):
            raise TokenFileError(f"{where}: the name {name[:40]!r} must be one word of up to 64 letters, "
                                 f"digits and ._@+- (e.g. anna or a.petrova)")
        tokens.append((name, token.encode("utf-8")))
    return tuple(tokens)


class Tokens:
    """The valid tokens, from ``path`` (None: there are none)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: tuple[tuple[str | None, bytes], ...] = ()
        self._current()  # a missing or bad file is reported at start-up

    def _current(self) -> tuple[tuple[str | None, bytes], ...]:
        if self.path is None:
            return ()
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError as exc:
                raise TokenFileError(f"http.token_file {self.path}: cannot read it: {exc}") from None
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp:
                self._tokens, self._stamp = read_tokens(self.path), stamp
            return self._tokens

    def _match(self, token: str) -> tuple[bool, str | None]:
        """(valid, its name): every known token is compared, whichever matches."""
        given = token.encode("utf-8")
        found, name = False, None
        for known_name, known in self._current():
            if hmac.compare_digest(given, known) and not found:
                found, name = True, known_name
        return found, name

    def viewer(self, authorization: str | None, *, public: bool, write: bool = False) -> Viewer:
        """Who sends ``authorization``: exact for a valid token (named if its line has a
        name); generalised for no token on a public collector when only reading. Raises
        :class:`Unauthorized` (no token where one is needed, a wrong one), :class:`Forbidden`
        (``write`` with a token that has no name) and :class:`TokenFileError` when the token
        file has become unreadable."""
        if authorization is None or authorization.strip() == "":
            if write:
                raise Unauthorized("verifying needs a researcher's token: send Authorization: Bearer TOKEN")
            if public:
                return Viewer(exact=False)
            raise Unauthorized("this collector is not public: send Authorization: Bearer TOKEN")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer TOKEN'", "invalid_request")
        valid, name = self._match(token.strip())  # TokenFileError goes up: a server problem, not the client's
        if not valid:
            raise Unauthorized("the token is not valid", "invalid_token")
        if write and name is None:
            raise Forbidden("this token has no name, so it may read but not verify: the collector's "
                            "administrator gives each researcher who verifies a line 'NAME TOKEN' in "
                            "http.token_file")
        return Viewer(exact=True, name=name)
