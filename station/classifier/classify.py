"""The classifier the station uses: a model, a taxonomy and the rules for pictures and events.

    classifier = Classifier.from_config(cfg.classifier)      # loads and checks once
    classifier.classify_image("photo.jpg")                    # -> Result
    record["classification"] = classifier.classify_event(record, event_dir)

``classify_event`` never raises for bad data: it returns ``status: "failed"`` with the
reason when no still could be classified, and lists stills it had to skip in
``frame_errors``. :func:`failed` builds the same shape for callers that have no
classifier (the model did not load).

Frames for an event: those with a saved file; the first after the trigger, then the
largest motion scores, up to ``max_frames`` successfully read (an unreadable still is
replaced by the next candidate). The next still is decoded on a helper thread while the
model runs on the current one.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import cv2
import numpy as np

from station.classifier.aggregate import Aggregate, aggregate
from station.classifier.model import ClassifierModel
from station.classifier.preprocess import Box, ImageError, load_views, parse_box
from station.classifier.runtime import ModelError
from station.classifier.taxonomy import Taxonomy, load_taxonomy
from station.log import get_logger
from station.record import ClassificationRecord, EventRecord

log = get_logger("classifier")


class Model(Protocol):
    labels: list[str]

    @property
    def input_size(self) -> tuple[int, int]: ...

    def predict(self, rgb: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Result:
    """What one picture shows."""

    source: str
    tag: str
    species: str | None
    label: str | None
    confidence: float
    top_k: list[dict] = field(default_factory=list)
    tag_scores: dict[str, float] = field(default_factory=dict)
    best_box: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.source, "tag": self.tag, "species": self.species, "label": self.label,
                "confidence": self.confidence, "top_k": self.top_k, "tag_scores": self.tag_scores,
                "best_box": self.best_box}


def failed(reason: str, model: dict | None = None, taxonomy: dict | None = None,
           threshold: float | None = None, frame_errors: list[dict] | None = None) -> ClassificationRecord:
    """The ``classification`` value of an event that could not be classified."""
    return {"status": "failed", "error": reason, "tag": None, "species": None, "label": None,
            "confidence": None, "top_k": [], "tag_scores": {}, "best_frame": None, "best_box": None,
            "frames": [], "frame_errors": frame_errors or [], "model": model, "taxonomy": taxonomy,
            "threshold": threshold}


def select_frames(frames: Sequence[dict]) -> list[dict]:
    """Candidate stills, best first: the first after the trigger, then by motion score."""
    usable = [f for f in frames if isinstance(f, dict) and f.get("file")]
    first = next((f for f in usable if not f.get("pre_trigger")), None)
    ranked = sorted(usable, key=lambda f: -float(f.get("motion_score") or 0.0))
    return ([first] if first else []) + [f for f in ranked if f is not first]


class Classifier:
    def __init__(self, model: Model, taxonomy: Taxonomy, *, min_confidence: float = 0.4,
                 crop_margin: float = 0.25, max_frames: int = 8, max_boxes: int = 2, top_k: int = 5,
                 model_id: dict | None = None):
        if len(taxonomy.fold) != len(model.labels):
            raise ModelError(f"{taxonomy.source}: built for {len(taxonomy.fold)} labels, the model has "
                             f"{len(model.labels)}")
        self.model, self.taxonomy = model, taxonomy
        self.min_confidence, self.crop_margin = min_confidence, crop_margin
        self.max_frames, self.max_boxes, self.top_k = max_frames, max_boxes, top_k
        info = getattr(model, "info", None)
        self.model_id = model_id or ({"name": info.name, "sha256": info.sha256} if info else {"name": "?", "sha256": None})

    @classmethod
    def from_config(cls, cfg) -> "Classifier":
        """Load the model, labels and taxonomy of a ``ClassifierSection``; raises
        ModelError / TaxonomyError naming the file that does not fit."""
        model = ClassifierModel(cfg.model, cfg.labels, cfg.threads, cfg.metadata, cfg.runtime)
        taxonomy = load_taxonomy(cfg.taxonomy, model.labels, cfg.region, labels_name=str(cfg.labels))
        log.info("classifier loaded", model=model.info.name, runtime=model.info.runtime,
                 threads=model.info.threads, region=cfg.region, labels=len(model.labels))
        return cls(model, taxonomy, min_confidence=cfg.min_confidence, crop_margin=cfg.crop_margin,
                   max_frames=cfg.max_frames, max_boxes=cfg.max_boxes, top_k=cfg.top_k)

    # -- the shared core ----------------------------------------------------------
    def _prepare(self, source: str | Path | np.ndarray, boxes: Sequence[Box]) -> tuple[list[np.ndarray], list[Box]]:
        return load_views(source, boxes, self.model.input_size, self.crop_margin, self.max_boxes)

    def _predict(self, views: list[np.ndarray]) -> np.ndarray:
        return self.taxonomy.roll_up(np.stack([self.model.predict(v) for v in views]))

    def _aggregate(self, probs: np.ndarray, view_frames: list[int]) -> Aggregate:
        t = self.taxonomy
        return aggregate(probs, view_frames, t.names, t.tags, t.species, self.min_confidence, self.top_k)

    # -- pictures -----------------------------------------------------------------
    def classify_image(self, image: str | Path | np.ndarray, boxes: Iterable[Sequence[float]] = ()) -> Result:
        """Classify one picture (a file, or a BGR/grey array); raises ImageError if unreadable."""
        parsed = [b for b in (parse_box(b) for b in boxes) if b]
        views, used = self._prepare(image, parsed)
        agg = self._aggregate(self._predict(views), [0] * len(views))
        box = used[agg.best_view - 1] if agg.best_view > 0 else None
        return Result(source=str(image) if not isinstance(image, np.ndarray) else "<array>",
                      tag=agg.tag, species=agg.species, label=agg.label, confidence=agg.confidence,
                      top_k=agg.top_k, tag_scores=agg.tag_scores, best_box=_rounded(box))

    # -- events -------------------------------------------------------------------
    def classify_event(self, record: EventRecord, event_dir: str | Path) -> ClassificationRecord:
        """The ``classification`` value for an event record whose stills are in ``event_dir``."""
        event_dir = Path(event_dir)
        frames = record.get("frames") if isinstance(record, dict) else None
        event_id = record.get("id") if isinstance(record, dict) else None
        if not isinstance(frames, list):
            return self._failed(event_id, f"{event_dir}: the event record has no frames list")
        candidates = select_frames(frames)
        if not candidates:
            return self._failed(event_id, f"{event_dir}: no stills were saved for this event")
        used: list[tuple[dict, list[Box]]] = []
        errors: list[dict] = []
        probs: list[np.ndarray] = []
        view_frames: list[int] = []
        try:
            with closing(self._read_ahead(candidates, event_dir)) as stills:
                for frame, outcome in stills:
                    if isinstance(outcome, ImageError):
                        errors.append({"file": frame["file"], "error": str(outcome)})
                        continue
                    views, boxes = outcome
                    probs.append(self._predict(views))
                    view_frames += [len(used)] * len(views)
                    used.append((frame, boxes))
                    if len(used) >= self.max_frames:
                        break
        except (ModelError, RuntimeError, ValueError) as exc:
            return self._failed(event_id, f"model failed: {exc}", errors)
        if not used:
            reason = "; ".join(e["error"] for e in errors) or f"{event_dir}: no readable stills"
            return self._failed(event_id, reason, errors)
        agg = self._aggregate(np.concatenate(probs), view_frames)
        for e in errors:
            log.warning("still skipped", id=event_id, file=e["file"], error=e["error"])
        frame, boxes = used[view_frames[agg.best_view]]
        first_view = view_frames.index(view_frames[agg.best_view])
        k = agg.best_view - first_view
        return {
            "status": "ok", "error": None,
            "tag": agg.tag, "species": agg.species, "label": agg.label, "confidence": agg.confidence,
            "top_k": agg.top_k, "tag_scores": agg.tag_scores,
            "best_frame": frame["file"], "best_box": _rounded(boxes[k - 1]) if k > 0 else None,
            "frames": [f["file"] for f, _ in used], "frame_errors": errors,
            "model": self.model_id, "taxonomy": self._taxonomy_id(), "threshold": self.min_confidence,
        }

    def _taxonomy_id(self) -> dict:
        return {"file": self.taxonomy.source.name, "region": self.taxonomy.region}

    def _failed(self, event_id: str | None, reason: str, errors: list[dict] | None = None) -> ClassificationRecord:
        log.warning("classification failed", id=event_id, error=reason)
        return failed(reason, self.model_id, self._taxonomy_id(), self.min_confidence, errors)

    def _read_ahead(self, candidates: list[dict], event_dir: Path):
        """Yield (frame, (views, boxes) or ImageError), decoding the next still meanwhile."""
        def job(frame: dict):
            name = str(frame["file"])
            path = event_dir / name
            if Path(name).name != name:
                raise ImageError(f"{path}: frame file must be a plain file name")
            boxes = [b for b in (parse_box(b) for b in frame.get("boxes") or []) if b]
            try:
                return self._prepare(path, boxes)
            except cv2.error as exc:
                raise ImageError(f"{path}: cannot be processed ({exc.err})") from None

        def outcome(fut: Future):
            try:
                return fut.result()
            except ImageError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify-read") as pool:
            pending = pool.submit(job, candidates[0])
            for i, frame in enumerate(candidates):
                current = pending
                if i + 1 < len(candidates):
                    pending = pool.submit(job, candidates[i + 1])
                yield frame, outcome(current)
            # leaving the with-block waits for at most one decode still in flight


def _rounded(box: Box | None) -> list[float] | None:
    return None if box is None else [round(float(v), 4) for v in box]
