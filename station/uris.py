"""Showing a URI without its secrets: the one rule for logs, messages and command output.

    redact_uri("rtsp://admin:secret@cam/stream?token=abc")  ->  "rtsp://***@cam/stream?token=***"
    redact_uri("postgresql://collector:pw@db/camtrap")      ->  "postgresql://***@db/camtrap"

User info (name and password) becomes ``***``, and so do query values whose key looks
secret (``password``, ``token``, ``key``, ...). Paths, files and ``synthetic:7`` pass
unchanged.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_KEYS = ("pass", "password", "pwd", "token", "key", "secret", "auth", "user", "username")


def redact_uri(uri: str | None) -> str | None:
    if not uri or "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:  # not a URL after all (an odd file name): nothing to take out
        return uri
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs)
    if "@" not in parts.netloc and not secret_query:
        return uri  # nothing to hide: exactly as given
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if secret_query:
        query = urlencode([(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
