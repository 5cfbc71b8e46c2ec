"""Strict JSON for the feed: I-JSON (RFC 7493), which every consumer reads the same way.

    value = loads(text)        # StrictJsonError naming what is wrong, and where when it can
    nul_at(value)              # the path of the first string holding U+0000, or None
    problem(value)             # None, or "top_k[0].p: ..." for a value someone else parsed

Python's ``json`` module reads more than JSON: ``NaN``, ``Infinity`` and ``-Infinity``
(no JSON has them), ``1e309`` (as infinity), integers of hundreds of digits, and
``"\\ud800"`` (a lone surrogate, which no UTF-8 text can hold) as a str that cannot be
written out again. Each of those passes a schema bound such as ``minimum: 0`` and breaks
whoever reads the value next (an API answer, a CSV export). :func:`loads` refuses them
all. NUL (``"\\u0000"``) is valid JSON but no PostgreSQL text can hold it, so the feed
forbids it in every string (keys too); :func:`nul_at` finds it, so that the caller can say
which field. :func:`problem` checks a value parsed elsewhere (a stored payload) for all of
it, and for nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Iterator

MAX_DEPTH = 32
"""Deepest nesting of objects and arrays (a detection/1 needs 5)."""

_FLOAT_MAX = sys.float_info.max
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class StrictJsonError(ValueError):
    """Not strict JSON; ``field`` is where (``extra.note``), or None when unknown."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


def _constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJsonError(f"the number {text[:40]} is too large for a double (it would become infinity)")
    return value


def _int(text: str) -> int:
    value = int(text)
    if abs(value) > _FLOAT_MAX:
        raise StrictJsonError(f"the integer of {len(text)} digits is too large for a double")
    return value


def _path(parts: list[Any], root: str = "") -> str:
    """``top_k[0].label``; a key that is not clean text is shown escaped (``'\\ud800'``)."""
    out = root
    for p in parts:
        if isinstance(p, str) and (_unencodable(p) or "\x00" in p):
            p = ascii(p)
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(message)"


def _walk(value: Any) -> Iterator[tuple[list[Any], Any, bool]]:
    """(path, node, is_key) for every node, depth first; strings that are keys included."""
    stack: list[tuple[list[Any], Any]] = [([], value)]
    while stack:
        path, node = stack.pop()
        yield path, node, False
        if isinstance(node, dict):
            for key, child in node.items():
                yield path + [key], key, True
                stack.append((path + [key], child))
        elif isinstance(node, list):
            stack.extend((path + [i], child) for i, child in enumerate(node))


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# A number beyond a double, in JSON text that was written out again (stored rows): 309+ digits.
_HUGE_NUMBER = re.compile(r"[0-9]{309}")


def loads(text: str) -> Any:
    """``text`` as a Python value, or StrictJsonError (json's own JSONDecodeError for text
    that is not JSON at all, which is a ValueError too)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise StrictJsonError("nested too deeply to read") from None
    except StrictJsonError:
        raise
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise StrictJsonError(f"not usable JSON: {str(exc)[:200]}") from None
    if _SURROGATE_ESCAPE.search(text):
        for path, node, is_key in _walk(value):
            if isinstance(node, str) and _unencodable(node):
                what = "a key" if is_key else "text"
                raise StrictJsonError(f"{what} with a lone surrogate escape (not Unicode text)", _path(path))
    return value


def nul_at(value: Any) -> str | None:
    """The path of the first string (key or value) holding a NUL character, or None."""
    for path, node, _ in _walk(value):
        if isinstance(node, str) and "\x00" in node:
            return _path(path)
    return None


def _clean(value: Any) -> bool:
    """The common case, decided in C: the value writes as strict JSON text, no NUL, no huge number."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
    except (ValueError, TypeError, RecursionError):  # NaN, a lone surrogate, not a JSON type
        return False
    return "\\u0000" not in text and not _HUGE_NUMBER.search(text)


def problem(value: Any, root: str = "") -> str | None:
    """Why a parsed value is not strict JSON fit for the feed, naming the field (under
    ``root``, if given); None if it is. (How deep it nests is the schema's business.)"""
    if _clean(value):
        return None
    for path, node, is_key in _walk(value):
        where = _path(path, root)
        if isinstance(node, str):
            if _unencodable(node):
                return f"{where}: {'a key' if is_key else 'text'} with a lone surrogate (not Unicode text)"
            if "\x00" in node:
                return f"{where}: {'a key' if is_key else 'text'} with a NUL character"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return f"{where}: {node} is not a JSON number"
        elif isinstance(node, int) and not isinstance(node, bool):
            if abs(node) > _FLOAT_MAX:
                return f"{where}: an integer too large for a double"
        elif not (node is None or isinstance(node, (bool, dict, list))):
            return f"{where}: a {type(node).__name__} is not a JSON value"
    return None
