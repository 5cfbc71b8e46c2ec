"""Bearer tokens: who may see exact coordinates (and, with ``public = false``, anything).

The token file holds one token per line; blank lines and '#' comments are skipped. It is
re-read when it changes, so a token is added or revoked without a restart. Tokens are
compared with :func:`hmac.compare_digest`, every one of them, so the time a check takes
does not tell how much of a guess was right.
"""

from __future__ import annotations

import hmac
import os
import threading
from pathlib import Path

MIN_TOKEN_LENGTH = 16


class TokenFileError(RuntimeError):
    """The token file cannot be read or holds a token too short to be safe."""


class Unauthorized(Exception):
    """The request must not be answered: ``str()`` says why, ``error`` is RFC 6750's code."""

    def __init__(self, message: str, error: str | None = None):
        super().__init__(message)
        self.error = error


def read_tokens(path: Path) -> tuple[bytes, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"http.token_file {path}: cannot read it: {exc}") from None
    tokens = []
    for number, line in enumerate(lines, start=1):
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        if len(token) < MIN_TOKEN_LENGTH or any(ch.isspace() for ch in token):
            raise TokenFileError(f"http.token_file {path}, line {number}: a token is one word of at least "
                                 f"{MIN_TOKEN_LENGTH} characters (e.g. from: openssl rand -hex 24)")
        tokens.append(token.encode("utf-8"))
    return tuple(tokens)


class Tokens:
    """The valid tokens, from ``path`` (None: there are none)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens: tuple[bytes, ...] = ()
        self._current()  # a missing or bad file is reported at start-up

    def _current(self) -> tuple[bytes, ...]:
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

    def valid(self, token: str) -> bool:
        given = token.encode("utf-8")
        return any([hmac.compare_digest(given, known) for known in self._current()])

    def exact_view(self, authorization: str | None, *, public: bool) -> bool:
        """True for a valid token (exact coordinates), False for no token on a public
        collector (generalised coordinates); raises :class:`Unauthorized` otherwise, and
        :class:`TokenFileError` when the token file has become unreadable."""
        if authorization is None or authorization.strip() == "":
            if public:
                return False
            raise Unauthorized("this collector is not public: send Authorization: Bearer TOKEN")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer TOKEN'", "invalid_request")
        if not self.valid(token.strip()):  # TokenFileError goes up: a server problem, not the client's
            raise Unauthorized("the token is not valid", "invalid_token")
        return True
