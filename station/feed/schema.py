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
``detection`` is a valid detection/1 that agrees with it (id, station, location). Times:
every one is a real calendar date and time (no 31 February; the schema's pattern already
fixes the form, the years 2000-2099 and seconds 00-59); in a detection ``start <= trigger
<= end``, every frame's ``time`` lies in ``[start, end]`` and ``duration_s`` is ``end -
start``, each to within :data:`TIME_TOLERANCE_S`. ``extra`` is at most
:data:`EXTRA_MAX_BYTES` as compact UTF-8 JSON and :data:`EXTRA_MAX_DEPTH` levels deep.
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

from station import times

try:  # Rust validator (the collector's extra): ~250x faster at saying "valid"
    import jsonschema_rs as _rs
except ImportError:  # pragma: no cover - the station itself does without
    _rs = None

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_BASE = "https://camtrap-station.example/schemas/"
from station.vocabulary import SCHEMA_KINDS as KINDS

MAJOR = 1

TIME_TOLERANCE_S = 0.01
"""How far a detection's times may disagree (the station cuts each time to milliseconds)."""
EXTRA_MAX_BYTES = 8 * 1024
"""``extra`` as compact UTF-8 JSON is at most this long."""
EXTRA_MAX_DEPTH = 8
"""``extra`` nests at most this deep (``extra`` itself is level 1)."""

_TIME_FIELDS = {"detection": ("start", "trigger", "end", "sent_at"), "status": ("since", "sent_at"),
                "health": ("sent_at",), "thumbnail": ("sent_at",), "command": ("sent_at",),
                "command_result": ("sent_at",)}


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


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (a scalar: 0), stopping past the limit."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > EXTRA_MAX_DEPTH:
                break
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _extra(p: dict[str, Any]) -> list[tuple[str, str]]:
    if "extra" not in p:
        return []
    depth = _depth(p["extra"])
    if depth > EXTRA_MAX_DEPTH:
        return [("extra", f"nests more than {EXTRA_MAX_DEPTH} levels deep")]
    try:
        size = len(json.dumps(p["extra"], separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode("utf-8"))
    except (ValueError, TypeError) as exc:  # NaN, a lone surrogate: not JSON text
        return [("extra", f"is not JSON text ({exc})")]
    if size > EXTRA_MAX_BYTES:
        return [("extra", f"is {size} bytes as JSON; at most {EXTRA_MAX_BYTES} are allowed")]
    return []


def _times(kind: str, p: dict[str, Any], out: list[tuple[str, str]]) -> dict[str, Any]:
    """The message's times, parsed; each one that is not a real date and time is named in ``out``."""
    parsed = {}
    for key in _TIME_FIELDS.get(kind, ()):
        if p.get(key) is not None:  # sent_at is optional in a will and a command
            try:
                parsed[key] = times.parse_feed(p[key])
            except times.TimeError as exc:
                out.append((key, str(exc)))
    return parsed


def _event_times(p: dict[str, Any], t: dict[str, Any], out: list[tuple[str, str]]) -> None:
    """A detection's times must agree: start <= trigger <= end, frames inside, duration_s."""
    tol = TIME_TOLERANCE_S
    frame_times = []
    for i, frame in enumerate(p["frames"]):
        try:
            frame_times.append((i, times.parse_feed(frame["time"])))
        except times.TimeError as exc:
            out.append((f"frames[{i}].time", str(exc)))
    if not {"start", "trigger", "end"} <= t.keys():
        return
    start, trigger, end = t["start"], t["trigger"], t["end"]
    if end < start:
        out.append(("end", f"{p['end']} is before start {p['start']}"))
        return
    if (start - trigger).total_seconds() > tol or (trigger - end).total_seconds() > tol:
        out.append(("trigger", f"{p['trigger']} is not between start {p['start']} and end {p['end']}"))
    span = (end - start).total_seconds()
    if abs(p["duration_s"] - span) > tol:
        out.append(("duration_s", f"is {p['duration_s']} but end - start is {span:.3f} s "
                                  f"(they may differ by {tol} s)"))
    for i, when in frame_times:
        if (start - when).total_seconds() > tol or (when - end).total_seconds() > tol:
            out.append((f"frames[{i}].time", f"{p['frames'][i]['time']} is outside the event "
                                             f"({p['start']} to {p['end']})"))


def _rules(kind: str, p: dict[str, Any]) -> list[tuple[str, str]]:
    """What a JSON Schema cannot say: fields that must agree with each other, real dates,
    and the size of ``extra``."""
    out: list[tuple[str, str]] = []
    parsed = _times(kind, p, out)
    out += _extra(p)
    if kind == "detection":
        if p["message_id"] != p["event_id"]:
            out.append(("message_id", f"must equal event_id {p['event_id']!r}"))
        if p["frame_count"] != len(p["frames"]):
            out.append(("frame_count", f"is {p['frame_count']} but frames lists {len(p['frames'])}"))
        if p["best_frame"] is not None and p["best_frame"] not in {f["index"] for f in p["frames"]}:
            out.append(("best_frame", f"{p['best_frame']} is not the index of any frame"))
        _event_times(p, parsed, out)
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
