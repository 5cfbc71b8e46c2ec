"""``station evaluate DIR``: how well the classifier tags a folder of labelled pictures.

DIR holds one sub-folder per expected tag::

    leopard/  tiger/  human/  vehicle/  other_animal/  empty/ (or blank/)
    prey/  prey_deer/  prey_boar/  prey_hare/  prey_<species>/

A ``prey_<species>`` folder expects tag ``prey`` and that species (as the taxonomy names
it: deer, boar, hare, goral, ...). Each picture is classified on its own (whole frame,
no motion boxes). The report gives accuracy over tags, per-tag precision and recall, a
confusion table, species accuracy for prey, and every prediction. Unreadable pictures
are listed and left out of the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from station.classifier.preprocess import ImageError
from station.classifier.taxonomy import TAGS
from station.vocabulary import UNKNOWN

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FOLDER_TAGS = {tag: tag for tag in TAGS} | {"empty": "blank"}
COLUMNS = (*TAGS, UNKNOWN)

Progress = Callable[[int, int, str], None]


def expected_for(folder: str) -> tuple[str, str | None]:
    """(tag, species or None) that a sub-folder's name stands for."""
    if folder in FOLDER_TAGS:
        return FOLDER_TAGS[folder], None
    if folder.startswith("prey_") and len(folder) > 5:
        return "prey", folder[5:]
    allowed = ", ".join([*FOLDER_TAGS, "prey_<species>"])
    raise ValueError(f"folder {folder!r} does not name a tag (allowed: {allowed})")


def collect(root: Path) -> list[tuple[Path, str, str | None]]:
    """(picture, expected tag, expected species) for every picture under ``root``'s sub-folders."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            tag, species = expected_for(sub.name)
        except ValueError as exc:
            raise ValueError(f"{sub}: {exc}") from None
        for path in sorted(sub.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                items.append((path, tag, species))
    if not items:
        raise ValueError(f"{root}: no pictures found in sub-folders named after tags")
    return items


def evaluate(root: str | Path, classifier, progress: Progress | None = None) -> dict:
    """Classify every picture under ``root`` and score the results (see module docstring)."""
    root = Path(root)
    items = collect(root)
    predictions, errors = [], []
    for i, (path, tag, species) in enumerate(items):
        try:
            result = classifier.classify_image(path)
        except ImageError as exc:
            errors.append({"file": str(path.relative_to(root)), "error": str(exc)})
        else:
            predictions.append({
                "file": str(path.relative_to(root)), "expected": tag, "expected_species": species,
                "tag": result.tag, "species": result.species, "label": result.label,
                "confidence": result.confidence, "correct": result.tag == tag,
            })
        if progress:
            progress(i + 1, len(items), path.name)
    return _score(root, predictions, errors, classifier)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _score(root: Path, predictions: list[dict], errors: list[dict], classifier) -> dict:
    confusion = {t: dict.fromkeys(COLUMNS, 0) for t in TAGS}
    for p in predictions:
        confusion[p["expected"]][p["tag"]] += 1
    per_tag = {}
    for t in TAGS:
        expected = sum(confusion[t].values())
        predicted = sum(row[t] for row in confusion.values())
        correct = confusion[t][t]
        if expected or predicted:
            per_tag[t] = {"expected": expected, "predicted": predicted, "correct": correct,
                          "precision": _ratio(correct, predicted), "recall": _ratio(correct, expected)}
    prey = [p for p in predictions if p["expected"] == "prey" and p["expected_species"]]
    prey_ok = sum(1 for p in prey if p["tag"] == "prey" and p["species"] == p["expected_species"])
    n_ok = sum(p["correct"] for p in predictions)
    taxonomy = getattr(classifier, "taxonomy", None)
    return {
        "dir": str(root), "images": len(predictions) + len(errors), "classified": len(predictions),
        "accuracy": _ratio(n_ok, len(predictions)), "correct": n_ok,
        "per_tag": per_tag,
        "confusion": {t: row for t, row in confusion.items() if sum(row.values())},
        "prey_species": {"images": len(prey), "correct": prey_ok, "accuracy": _ratio(prey_ok, len(prey))},
        "model": getattr(classifier, "model_id", None),
        "region": getattr(taxonomy, "region", None),
        "threshold": getattr(classifier, "min_confidence", None),
        "errors": errors, "predictions": predictions,
    }


def _fmt(x: float | None) -> str:
    return "   -" if x is None else f"{x:.2f}"


def format_report(r: dict) -> str:
    model = (r.get("model") or {}).get("name", "?")
    lines = [f"Evaluated {r['classified']} of {r['images']} pictures in {r['dir']}",
             f"  model {model}, region {r.get('region')}, min_confidence {r.get('threshold')}",
             f"Tag accuracy: {_fmt(r['accuracy'])} ({r['correct']}/{r['classified']})"]
    ps = r["prey_species"]
    if ps["images"]:
        lines.append(f"Prey species accuracy: {_fmt(ps['accuracy'])} ({ps['correct']}/{ps['images']})")
    lines += ["", f"{'tag':14}{'expected':>9}{'predicted':>10}{'precision':>10}{'recall':>8}"]
    for t, s in r["per_tag"].items():
        lines.append(f"{t:14}{s['expected']:9d}{s['predicted']:10d}{_fmt(s['precision']):>10}{_fmt(s['recall']):>8}")
    short = {"other_animal": "other", "vehicle": "vehic", "leopard": "leop", "unknown": "unkn"}
    cols = [short.get(c, c) for c in COLUMNS]
    lines += ["", "Confusion (rows: expected, columns: predicted):",
              " " * 14 + "".join(f"{c:>7}" for c in cols)]
    for t, row in r["confusion"].items():
        lines.append(f"{t:14}" + "".join(f"{row[c]:7d}" for c in COLUMNS))
    wrong = [p for p in r["predictions"] if not p["correct"]]
    if wrong:
        lines += ["", "Misses:"]
        lines += [f"  {p['file']}: {p['tag']} ({p['label']}, {p['confidence']:.2f})" for p in wrong]
    if r["errors"]:
        lines += ["", "Unreadable:"] + [f"  {e['error']}" for e in r["errors"]]
    return "\n".join(lines)
