"""From model labels to the tags people act on, with a regional roll-up.

A taxonomy is a TOML file (see ``models/taxonomy_imagenet.toml``)::

    schema = 1
    default_tag = "blank"                   # labels not mentioned below

    [[ranges]]                              # label indices (0-based, inclusive); later ranges win
    first = 0
    last = 397
    tag = "other_animal"                    # species: the label itself unless given

    [tags.prey]                             # [tags.TAG] SPECIES = [LABELS]; beats any range
    boar = ["wild boar"]

    [regions.russian_far_east]
    description = "..."
    [regions.russian_far_east.fold]         # LABEL = LABEL it becomes here (taxa absent from the region)
    jaguar = "leopard"
    "American black bear" = "Asiatic black bear"
    [regions.russian_far_east.new]          # fold targets that are not model labels
    "Asiatic black bear" = { tag = "other_animal", species = "bear" }

Loading it for one region gives *slots*: the unique label names (a name that occurs twice
in the labels file, like ImageNet's "missile", is one slot), minus the labels folded
away, plus the region's new names. :meth:`Taxonomy.roll_up` moves each label's
probability into its slot, so a "jaguar" in the Russian Far East adds to "leopard".
Region ``none`` folds nothing. Every mistake raises :class:`TaxonomyError` naming the
file and the key.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from station.vocabulary import CLASSIFIER_TAGS as TAGS

NO_ROLL_UP = "none"

_TOP_KEYS = {"schema", "description", "labels", "default_tag", "ranges", "tags", "regions"}


class TaxonomyError(ValueError):
    """The taxonomy file does not fit the labels or is malformed; names the file and key."""


@dataclass(frozen=True)
class Taxonomy:
    source: Path
    region: str
    names: tuple[str, ...]
    """Slot names: what results call a label after roll-up."""
    tags: tuple[str, ...]
    species: tuple[str | None, ...]
    fold: np.ndarray
    """For each model output index, its slot."""

    def roll_up(self, probs: np.ndarray) -> np.ndarray:
        """Model probabilities ([N] or [V, N]) -> slot probabilities ([S] or [V, S])."""
        p = np.atleast_2d(np.asarray(probs, np.float32))
        out = np.stack([np.bincount(self.fold, weights=row, minlength=len(self.names)) for row in p])
        out = out.astype(np.float32)
        return out[0] if np.ndim(probs) == 1 else out

    def tag_of(self, label: str) -> str:
        return self.tags[self.names.index(label)]


def _fail(source: Path, key: str, msg: str) -> TaxonomyError:
    return TaxonomyError(f"{source}: {key}: {msg}" if key else f"{source}: {msg}")


def _unknown_label(source: Path, key: str, label: Any, labels_name: str, labels: Sequence[str]) -> TaxonomyError:
    close = difflib.get_close_matches(str(label), labels, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return _fail(source, key, f"label {label!r} is not in {labels_name}{hint}")


def _check_tag(source: Path, key: str, tag: Any) -> str:
    if tag not in TAGS:
        raise _fail(source, key, f"unknown tag {tag!r} (allowed: {', '.join(TAGS)})")
    return tag


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"{path}: taxonomy file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxonomyError(f"{path}: cannot read the taxonomy file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{path}: not valid TOML ({exc})") from None


def regions(path: Path) -> list[str]:
    """Region names a taxonomy file defines (``none`` is always there)."""
    return sorted({NO_ROLL_UP, *(read_toml(path).get("regions") or {})})


def _base_mapping(src: Path, data: dict, labels: Sequence[str], labels_name: str) -> list[tuple[str, str | None]]:
    """(tag, species) for every model label index, before any roll-up."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(src, ", ".join(sorted(unknown)), f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    if data.get("schema", 1) != 1:
        raise _fail(src, "schema", f"unsupported schema {data.get('schema')!r} (this station reads 1)")
    default = _check_tag(src, "default_tag", data.get("default_tag", "blank"))
    mapping: list[tuple[str, str | None]] = [(default, None if default == "blank" else lab) for lab in labels]
    for i, rng in enumerate(data.get("ranges") or []):
        key = f"ranges[{i}]"
        if not isinstance(rng, dict) or set(rng) - {"first", "last", "tag", "species"}:
            raise _fail(src, key, "must be a table with first, last, tag and optional species")
        first, last = rng.get("first"), rng.get("last")
        if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last < len(labels)):
            raise _fail(src, key, f"first={first!r}, last={last!r} must be indices with 0 <= first <= last < "
                                  f"{len(labels)} (the labels in {labels_name})")
        tag = _check_tag(src, f"{key}.tag", rng.get("tag"))
        for j in range(first, last + 1):
            mapping[j] = (tag, rng.get("species") or (None if tag == "blank" else labels[j]))
    index: dict[str, list[int]] = {}
    for j, lab in enumerate(labels):
        index.setdefault(lab, []).append(j)
    seen: dict[str, str] = {}
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise _fail(src, "tags", "must be a table of [tags.TAG] tables")
    for tag, groups in tags.items():
        _check_tag(src, f"tags.{tag}", tag)
        if not isinstance(groups, dict):
            raise _fail(src, f"tags.{tag}", "must be a table: SPECIES = [LABELS]")
        for species, members in groups.items():
            key = f"tags.{tag}.{species}"
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise _fail(src, key, "must be a list of label strings")
            for lab in members:
                if lab not in index:
                    raise _unknown_label(src, key, lab, labels_name, labels)
                if lab in seen:
                    raise _fail(src, key, f"label {lab!r} is already listed under {seen[lab]}")
                seen[lab] = key
                for j in index[lab]:
                    mapping[j] = (tag, None if tag == "blank" else species)
    return mapping


def load_taxonomy(path: str | Path, labels: Sequence[str], region: str = NO_ROLL_UP,
                  labels_name: str = "the labels file") -> Taxonomy:
    """Read ``path`` and build the slots for ``region`` over the model's ``labels``."""
    src = Path(path)
    data = read_toml(src)
    mapping = _base_mapping(src, data, labels, labels_name)
    all_regions = data.get("regions") or {}
    if region != NO_ROLL_UP and region not in all_regions:
        raise _fail(src, "regions", f"region {region!r} is not defined here "
                                    f"(defined: {', '.join(sorted({NO_ROLL_UP, *all_regions}))})")
    spec = all_regions.get(region) or {}
    rkey = f"regions.{region}"
    if not isinstance(spec, dict) or set(spec) - {"description", "fold", "new"}:
        raise _fail(src, rkey, "allowed keys: description, fold, new")
    new: dict[str, tuple[str, str | None]] = {}
    for name, entry in (spec.get("new") or {}).items():
        key = f"{rkey}.new.{name}"
        if not isinstance(entry, dict) or set(entry) - {"tag", "species"} or "tag" not in entry:
            raise _fail(src, key, "must be { tag = \"...\", species = \"...\" }")
        if name in labels:
            raise _fail(src, key, f"{name!r} is already a model label; fold to it directly")
        tag = _check_tag(src, f"{key}.tag", entry["tag"])
        new[name] = (tag, entry.get("species") or (None if tag == "blank" else name))
    fold: dict[str, str] = {}
    for source_label, target in (spec.get("fold") or {}).items():
        key = f"{rkey}.fold.{source_label}"
        if source_label not in labels:
            raise _unknown_label(src, key, source_label, labels_name, labels)
        if not isinstance(target, str) or (target not in labels and target not in new):
            raise _fail(src, key, f"target {target!r} is neither a label in {labels_name} "
                                  f"nor declared in [{rkey}.new]")
        fold[source_label] = target
    chained = sorted(t for t in fold.values() if t in fold)
    if chained:
        raise _fail(src, f"{rkey}.fold", f"{chained[0]!r} is both folded and a fold target; fold straight "
                                         "to the final label")
    names: list[str] = []
    slot_of: dict[str, int] = {}
    meaning: list[tuple[str, str | None]] = []
    for j, lab in enumerate(labels):
        if lab not in fold and lab not in slot_of:
            slot_of[lab] = len(names)
            names.append(lab)
            meaning.append(mapping[j])
    for name, m in new.items():
        slot_of[name] = len(names)
        names.append(name)
        meaning.append(m)
    idx = np.array([slot_of[fold.get(lab, lab)] for lab in labels], np.int64)
    return Taxonomy(src, region, tuple(names), tuple(m[0] for m in meaning), tuple(m[1] for m in meaning), idx)
