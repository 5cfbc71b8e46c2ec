"""Validating feed messages against their JSON Schemas (``station/feed/schemas/``).

    validate("detection", payload)      # raises PayloadError naming the field
    validate_message(payload)           # picks the schema by the payload's "schema" field

Each message has one schema file, JSON Schema draft 2020-12, whose ``$id`` is
``https://camtrap-station.example/schemas/<name>/<major>``: the base URI followed by the
payload's own ``schema`` value (``detection/1``). ``.example`` is a reserved top-level
domain, so the ids are names that never resolve and never clash with anyone's.

Valid payloads are recognised by ``jsonschema-rs`` when it is installed (the collector's
extra: ~7 µs a detection instead of ~2 ms); invalid ones are always described by
``jsonschema``, so the error messages do not depend on it.

Besides the schema, :func:`validate` checks the few rules a schema cannot state:
``message_id`` equals ``event_id`` (detection) or ``event_id + ":thumb"`` (thumbnail),
``frame_count`` is the length of ``frames``, ``best_frame`` names one of them, a
thumbnail's ``bytes`` is the size of its decoded ``data``, and a ``feed_detection``'s
``detection`` is a valid detection/1 that agrees with it (id, station, location).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from jsonschema import Draft202012Validator, ValidationError
from jsonschema import validators as _validators

try:  # Rust validator (the collector's extra): ~250x faster at saying "valid"
    import jsonschema_rs as _rs
except ImportError:  # pragma: no cover - the station itself does without
    _rs = None

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_BASE = "https://camtrap-station.example/schemas/"
KINDS = ("detection", "status", "health", "thumbnail", "command", "command_result", "feed_detection")
"""Station messages, and ``feed_detection`` (what the collector republishes)."""
MAJOR = 1


class PayloadError(ValueError):
    """A payload that does not fit its schema. ``field`` is the path of the first problem
    (``top_k[0].p``, ``(message)`` for the whole payload); ``problems`` lists them all."""

    def __init__(self, kind: str, problems: list[tuple[str, str]]):
        self.kind = kind
        self.problems = problems
        self.field = problems[0][0]
        shown = "; ".join(f"{f}: {m}" for f, m in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{kind}: {shown}{more}")


def schema_id(kind: str) -> str:
    return f"{SCHEMA_BASE}{kind}/{MAJOR}"


def schema_path(kind: str) -> Path:
    if kind not in KINDS:
        raise PayloadError(str(kind), [("schema", f"unknown message kind {kind!r} "
                                                  f"(known: {', '.join(KINDS)})")])
    return SCHEMA_DIR / f"{kind}.schema.json"


@lru_cache(maxsize=None)
def load_schema(kind: str) -> dict[str, Any]:
    return json.loads(schema_path(kind).read_text(encoding="utf-8"))


def _ecma_pattern(validator, pattern: str, instance: Any, schema: dict) -> Iterable[ValidationError]:
    """``pattern`` as JSON Schema means it (ECMA-262): Python's ``$`` would also match before
    a trailing newline, letting ``"station-1\\n"`` through as a station id."""
    if not validator.is_type(instance, "string"):
        return
    regex = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    if not re.search(regex, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = _validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@lru_cache(maxsize=None)
def _validator(kind: str):
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    return _Validator(schema)


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _describe(kind: str, error: ValidationError) -> list[tuple[str, str]]:
    """(field path, sentence) for one schema error, naming the offending key itself."""
    where = _path(error.absolute_path)
    if error.validator == "required":
        match = re.match(r"^'(.+)' is a required property$", error.message)
        name = match.group(1) if match else "?"
        return [(_join(where, name), "required but missing")]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        out = []
        for key in sorted(k for k in error.instance if k not in known):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where_new = "new keys go under 'extra'" if "extra" in known else f"allowed: {', '.join(known)}"
            out.append((_join(where, key), f"unknown key ({hint}{where_new})"))
        return out
    return [(where or "(message)", error.message + _condition(kind, error))]


def _condition(kind: str, error: ValidationError) -> str:
    """`` (when classification_status is 'failed')`` for an error raised by an if/then rule."""
    path = list(error.absolute_schema_path)
    if "then" not in path:
        return ""
    node: Any = load_schema(kind)
    for part in path[:len(path) - 1 - path[::-1].index("then")]:
        node = node[part]
    terms = []
    for key, rule in node.get("if", {}).get("properties", {}).items():
        if "const" in rule:
            terms.append(f"{key} is {rule['const']!r}")
        elif "enum" in rule:
            terms.append(f"{key} is one of {rule['enum']}")
    return f" (when {' and '.join(terms)})" if terms else ""


@lru_cache(maxsize=None)
def _fast(kind: str):
    """A compiled jsonschema-rs validator, or None without the package."""
    return None if _rs is None else _rs.validator_for(load_schema(kind))


def _problems(kind: str, payload: Any) -> list[tuple[str, str]]:
    """Every problem with ``payload``. A payload the fast validator accepts goes straight to
    the cross-field rules; anything else is judged (and described) by ``jsonschema``, which
    stays the authority: the fast path can only save time, never reject."""
    fast = _fast(kind)
    if fast is not None and isinstance(payload, dict):
        try:
            if fast.is_valid(payload):
                return _rules(kind, payload)
        except (ValueError, OverflowError):  # a value the Rust side cannot hold: take the slow path
            pass
    problems: list[tuple[str, str]] = []
    errors = sorted(_validator(kind).iter_errors(payload),
                    key=lambda e: (list(map(str, e.absolute_path)), e.message))
    for error in errors:
        for problem in _describe(kind, error):
            if problem not in problems:
                problems.append(problem)
    if not problems and isinstance(payload, dict):
        problems = _rules(kind, payload)
    return problems


def _rules(kind: str, p: dict[str, Any]) -> list[tuple[str, str]]:
    """What a JSON Schema cannot say: fields that must agree with each other."""
    out: list[tuple[str, str]] = []
    if kind == "detection":
        if p["message_id"] != p["event_id"]:
            out.append(("message_id", f"must equal event_id {p['event_id']!r}"))
        if p["frame_count"] != len(p["frames"]):
            out.append(("frame_count", f"is {p['frame_count']} but frames lists {len(p['frames'])}"))
        if p["best_frame"] is not None and p["best_frame"] not in {f["index"] for f in p["frames"]}:
            out.append(("best_frame", f"{p['best_frame']} is not the index of any frame"))
    elif kind == "feed_detection":
        inner = p["detection"]
        out += [(f"detection.{f}" if f != "(message)" else "detection", m) for f, m in _problems("detection", inner)]
        if not out:
            if p["message_id"] != inner["event_id"]:
                out.append(("message_id", f"must equal detection.event_id {inner['event_id']!r}"))
            if p["station_id"] != inner["station_id"]:
                out.append(("station_id", f"must equal detection.station_id {inner['station_id']!r}"))
            shown = None if p["location"] is None else {k: v for k, v in p["location"].items() if k != "generalised"}
            if shown != inner["location"]:
                out.append(("location", "must equal detection.location (plus generalised)"))
    elif kind == "thumbnail":
        if p["message_id"] != p["event_id"] + ":thumb":
            out.append(("message_id", f"must equal event_id + ':thumb' ({p['event_id']}:thumb)"))
        try:
            size = len(base64.b64decode(p["data"], validate=True))
        except (binascii.Error, ValueError):
            out.append(("data", "is not valid base64"))
        else:
            if size != p["bytes"]:
                out.append(("bytes", f"is {p['bytes']} but data decodes to {size} bytes"))
    return out


def validate(kind: str, payload: Any) -> None:
    """Raise :class:`PayloadError` unless ``payload`` is a valid ``kind`` message (version 1)."""
    schema_path(kind)  # an unknown kind raises, naming the known ones
    problems = _problems(kind, payload)
    if problems:
        raise PayloadError(f"{kind}/{MAJOR}", problems)


def validate_message(payload: Any) -> str:
    """Validate a payload by its own ``schema`` field; returns the message kind."""
    if not isinstance(payload, dict):
        raise PayloadError("(unknown)", [("(message)", f"a message is a JSON object, "
                                                       f"not {type(payload).__name__}")])
    name = payload.get("schema")
    if not isinstance(name, str) or "/" not in name:
        raise PayloadError("(unknown)", [("schema", f"{name!r} is not '<message>/<major>' "
                                                    f"(e.g. 'detection/1')")])
    kind, _, major = name.partition("/")
    if kind not in KINDS:
        raise PayloadError(name, [("schema", f"unknown message {kind!r} (known: {', '.join(KINDS)})")])
    if major != str(MAJOR):
        raise PayloadError(name, [("schema", f"major version {major!r} is not supported here "
                                             f"(this validator knows {kind}/{MAJOR})")])
    validate(kind, payload)
    return kind
