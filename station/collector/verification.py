"""A researcher's verification of an event, and how far the machine's tags can be trusted.

    v = parse(body_bytes)                 # Verification(tag, species), or BadVerification naming the field
    db.add_verification(event_id, v.tag, v.species, verified_by="anna")
    report = confusion(db.verified_pairs())  # machine tag x verified tag, overall and per station

A verification says what the event really shows: a tag of :data:`station.vocabulary.TAGS`
and, for an animal, person or vehicle, optionally a species (the common name, as the
station's taxonomy writes them: ``sika deer``). It is stored beside the machine's
classification, never over it (``verifications`` table, append-only: the history of
changes, who and when). Species are kept in lower case with single spaces, and hold only
letters, digits, spaces and ``'-.()``: they become folder names of a training set
(``prey_sika deer``) and must be safe as one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from station.feed import strict_json
from station.vocabulary import BLANK, TAGS, UNKNOWN

MAX_BODY_BYTES = 4096
MAX_SPECIES = 64
FIELDS = ("tag", "species")
_SPECIES = re.compile(r"[^\W\d_][\w '().-]*")
NO_SPECIES_TAGS = (BLANK, UNKNOWN)
"""A verified blank has nothing to name, and "cannot tell" names no species."""


class BadVerification(ValueError):
    """A verification the collector cannot store; ``field`` names what is wrong."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Verification:
    tag: str
    species: str | None = None


def species_name(raw: Any, field: str = "species") -> str | None:
    """A species as stored: None for null or empty, else lower case with single spaces."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadVerification(field, f"must be a string or null, not {type(raw).__name__}")
    name = " ".join(raw.split()).lower()
    if not name:
        return None
    if len(name) > MAX_SPECIES:
        raise BadVerification(field, f"longer than {MAX_SPECIES} characters")
    if not _SPECIES.fullmatch(name):
        raise BadVerification(field, f"{name[:40]!r}: a common name starts with a letter and holds only letters, "
                                     "digits, spaces and ' - . ( ) (e.g. sika deer)")
    return name


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadVerification(key[:40], "given more than once")
        seen.add(key)
    return dict(pairs)


def parse(body: bytes) -> Verification:
    """The verification in a request body: a JSON object ``{"tag": ..., "species": ...}``
    (``species`` optional). Raises :class:`BadVerification` naming the field for anything
    else: not strict JSON, an unknown or missing field, a tag not in the vocabulary, a
    species that is not a plain common name or given with ``blank``/``unknown``."""
    if len(body) > MAX_BODY_BYTES:
        raise BadVerification("(body)", f"over {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        value = strict_json.loads(text)
        json.loads(text, object_pairs_hook=_unique)
    except UnicodeDecodeError:
        raise BadVerification("(body)", "not UTF-8") from None
    except BadVerification:
        raise
    except strict_json.StrictJsonError as exc:
        what = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        raise BadVerification(exc.field or "(body)", f"not strict JSON: {what}") from None
    except ValueError as exc:  # json's JSONDecodeError
        raise BadVerification("(body)", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadVerification("(body)", 'must be a JSON object such as {"tag": "prey", "species": "sika deer"}')
    for key in value:
        if key not in FIELDS:
            raise BadVerification(str(key)[:40], f"unknown field (allowed: {', '.join(FIELDS)})")
    tag = value.get("tag")
    if tag is None:
        raise BadVerification("tag", f"missing (one of: {', '.join(TAGS)})")
    if not isinstance(tag, str) or tag not in TAGS:
        raise BadVerification("tag", f"{str(tag)[:40]!r} is not a tag (one of: {', '.join(TAGS)})")
    species = species_name(value.get("species"))
    if species is not None and tag in NO_SPECIES_TAGS:
        raise BadVerification("species", f"a {tag} event names no species (leave it out)")
    return Verification(tag, species)


# -- field accuracy -----------------------------------------------------------------------

def _block(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    index = {t: i for i, t in enumerate(TAGS)}
    matrix = [[0] * len(TAGS) for _ in TAGS]
    species_compared = species_agreed = 0
    for p in pairs:
        n = int(p["n"])
        matrix[index[p["machine"]]][index[p["verified"]]] += n
        if p["machine"] == p["verified"] and p.get("species_agree") is not None:
            species_compared += n
            species_agreed += n * int(p["species_agree"])
    verified = sum(map(sum, matrix))
    agreed = sum(matrix[i][i] for i in range(len(TAGS)))
    per_tag = []
    for i, tag in enumerate(TAGS):
        said = sum(matrix[i])                    # the machine said `tag`
        truly = sum(row[i] for row in matrix)    # a researcher said `tag`
        per_tag.append({"tag": tag, "machine": said, "verified": truly,
                        "precision": round(matrix[i][i] / said, 4) if said else None,
                        "recall": round(matrix[i][i] / truly, 4) if truly else None})
    return {"verified": verified, "agreed": agreed,
            "accuracy": round(agreed / verified, 4) if verified else None,
            "matrix": matrix, "per_tag": per_tag,
            "species": {"compared": species_compared, "agreed": species_agreed}}


def confusion(pairs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Machine tag against verified tag from ``Database.verified_pairs`` rows, overall and
    per station: ``matrix[i][j]`` counts events the machine tagged ``TAGS[i]`` that a
    researcher verified as ``TAGS[j]``; ``accuracy`` is the share on the diagonal;
    ``per_tag`` gives precision (of the machine's calls) and recall (of the verified);
    ``species`` counts, where both agree on the tag and the researcher named a species,
    how often the machine's species was the same. Rows with a tag outside the vocabulary
    (hand-written databases) are left out."""
    rows = [p for p in pairs if p["machine"] in TAGS and p["verified"] in TAGS]
    stations: dict[str, list[dict[str, Any]]] = {}
    for p in rows:
        stations.setdefault(p["station_id"], []).append(p)
    return {"tags": list(TAGS), "rows": "machine", "columns": "verified", "overall": _block(rows),
            "stations": [{"station_id": s, **_block(ps)} for s, ps in sorted(stations.items())]}
