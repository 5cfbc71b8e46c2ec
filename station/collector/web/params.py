"""Query parameters of the API: each one parsed and checked, every problem named.

    spec = {"tag": tag, "limit": integer(1, 1000, default=50)}
    values = parse(request.query_params, spec)        # or raises BadParameter("limit", "...")

A parameter given empty (``?species=``, as an HTML form sends "any") counts as not given.
A parameter the route does not know is an error rather than silently ignored: a typo
such as ``?specie=leopard`` would otherwise return every detection.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable, Mapping

from starlette.datastructures import QueryParams

from station import times
from station.vocabulary import TAGS

MAX_TEXT = 200
# '+' unescaped in a URL arrives as a space: "2026-11-25T00:00:00 10:00".
_PLUS_AS_SPACE = re.compile(r"^(.*\d{2}:\d{2}:\d{2}(?:\.\d+)?) (\d{2}:\d{2})$")


class BadParameter(ValueError):
    """A query parameter the API cannot use; ``str()`` is the sentence for the client."""

    def __init__(self, parameter: str, problem: str):
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter


Parser = Callable[[str, str], Any]  # (name, raw text) -> value, or raises BadParameter


def text(name: str, raw: str) -> str:
    if len(raw) > MAX_TEXT:
        raise BadParameter(name, f"longer than {MAX_TEXT} characters")
    if any(ord(ch) < 32 for ch in raw):
        raise BadParameter(name, "contains control characters")
    return raw


def tag(name: str, raw: str) -> str:
    if raw not in TAGS:
        raise BadParameter(name, f"{raw[:40]!r} is not a tag (one of: {', '.join(TAGS)})")
    return raw


def boolean(name: str, raw: str) -> bool:
    if raw not in ("true", "false"):
        raise BadParameter(name, f"{raw[:40]!r} is not true or false")
    return raw == "true"


def time(name: str, raw: str) -> datetime:
    value = raw
    plus = _PLUS_AS_SPACE.match(value)
    if plus:
        value = f"{plus.group(1)}+{plus.group(2)}"
    try:
        return times.parse(value, date_ok=True)
    except times.TimeError as exc:
        if "not an RFC 3339 time" in str(exc):
            raise BadParameter(name, f"{raw[:40]!r} is not an RFC 3339 time (e.g. 2026-11-25T00:00:00Z, "
                                     f"2026-11-25T09:00:00%2B10:00 with '+' written %2B, or 2026-11-25)") from None
        raise BadParameter(name, f"{raw[:40]!r} is not a valid date or time") from None


def time_zone(name: str, raw: str) -> str:
    """An IANA zone name from the list (never used as a path: a long or odd one is just unknown)."""
    try:
        times.zone(raw)
    except times.TimeError:
        raise BadParameter(name, f"{raw[:40]!r} is not a known IANA time zone "
                                 f"(e.g. Asia/Vladivostok, UTC)") from None
    return raw


def integer(low: int, high: int | None = None) -> Parser:
    def parse_int(name: str, raw: str) -> int:
        if not re.fullmatch(r"[+-]?\d{1,12}", raw):
            raise BadParameter(name, f"{raw[:40]!r} is not a whole number")
        value = int(raw)
        if value < low or (high is not None and value > high):
            allowed = f"{low}..{high}" if high is not None else f">= {low}"
            raise BadParameter(name, f"{value} is out of range ({allowed})")
        return value
    return parse_int


def parse(query: QueryParams, spec: Mapping[str, Parser], defaults: Mapping[str, Any] | None = None
          ) -> dict[str, Any]:
    """The parameters of ``spec`` (None, or the default, when not given); raises
    :class:`BadParameter` for an unknown, repeated or bad one."""
    values: dict[str, Any] = {name: None for name in spec} | dict(defaults or {})
    for name in query.keys():
        if name not in spec:
            allowed = ", ".join(spec) if spec else "none"
            raise BadParameter(name[:40], f"unknown parameter (allowed here: {allowed})")
        given = query.getlist(name)
        if len(given) > 1:
            raise BadParameter(name, "given more than once")
        if given[0] != "":
            values[name] = spec[name](name, given[0])
    if values.get("since") is not None and values.get("until") is not None and values["until"] <= values["since"]:
        raise BadParameter("until", "must be later than since")
    return values
