"""Scores of many views -> one result for a picture or an event. Pure functions.

The input is one probability vector per *view* (the whole frame, or a crop around a
motion box), already rolled up to the taxonomy's slots, and the frame each view came
from. The rule:

1. **View**: a tag's score is the sum of the probabilities of the slots with that tag
   (the model may split "prey" over boar and deer; together they count).
2. **Frame**: for every tag but blank, the *maximum* over the frame's views: an animal
   that fills one crop and is a speck in the whole frame is there (an OR). For blank,
   the *minimum*: a frame is empty only if every view says so (an AND).
3. **Event**: per tag, the mean of the ``k`` (default 2) best frames, so one fluke
   frame cannot decide an event of several frames but an animal seen in two stills
   counts fully; blank takes the mean of its ``k`` lowest frames (the robust AND).
   A single frame is its own score.
4. **Decision**: the tag with the highest event score; if that is below
   ``min_confidence``, the tag is ``unknown`` (with that score as the confidence).
5. **Species and label**: pooled like the tags (max over views, mean of the best ``k``
   frames), the best species and slot within the decided tag. ``top_k`` lists slots by
   the same pooled score, zeros left out (the int8 model's 1/256 floor).
6. **Best view**: the view with the highest score for the decided tag (for unknown: for
   the best-scoring tag); it names the best frame and box.

Pooled scores are evidence, not a distribution: they need not sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from station.classifier.taxonomy import TAGS
from station.vocabulary import BLANK, UNKNOWN

FRAMES_K = 2


@dataclass(frozen=True)
class Aggregate:
    tag: str
    confidence: float
    species: str | None
    label: str | None
    best_view: int
    tag_scores: dict[str, float] = field(default_factory=dict)
    top_k: list[dict] = field(default_factory=list)
    """[{"label", "tag", "p"}], best first."""


def per_frame(values: np.ndarray, view_frames: Sequence[int], how: str = "max") -> np.ndarray:
    """(views, X) -> (frames, X): max (or min) over each frame's views, frames in first-seen order."""
    vf = np.asarray(view_frames)
    frames = list(dict.fromkeys(view_frames))
    reduce = np.max if how == "max" else np.min
    return np.stack([reduce(values[vf == f], axis=0) for f in frames])


def over_frames(frame_values: np.ndarray, k: int = FRAMES_K, best: bool = True) -> np.ndarray:
    """(frames, X) -> (X,): mean of the ``k`` highest (or lowest) frames per column."""
    s = np.sort(frame_values, axis=0)
    k = max(1, min(k, len(s)))
    return (s[-k:] if best else s[:k]).mean(axis=0)


def pool(values: np.ndarray, view_frames: Sequence[int], k: int = FRAMES_K) -> np.ndarray:
    """The OR pooling of steps 2-3 for any per-view scores (tags, species, slots)."""
    return over_frames(per_frame(values, view_frames, "max"), k, best=True)


def tag_scores(slot_probs: np.ndarray, slot_tags: Sequence[str]) -> np.ndarray:
    """(views, slots) -> (views, len(TAGS)): summed probability per tag."""
    onehot = np.zeros((len(slot_tags), len(TAGS)), np.float32)
    onehot[np.arange(len(slot_tags)), [TAGS.index(t) for t in slot_tags]] = 1.0
    return np.asarray(slot_probs, np.float32) @ onehot


def event_tag_scores(view_tags: np.ndarray, view_frames: Sequence[int], k: int = FRAMES_K) -> np.ndarray:
    """Steps 2-3 for tags: OR pooling, except blank which is AND-pooled."""
    scores = pool(view_tags, view_frames, k)
    b = TAGS.index(BLANK)
    scores[b] = over_frames(per_frame(view_tags[:, [b]], view_frames, "min"), k, best=False)[0]
    return scores


def aggregate(slot_probs: np.ndarray, view_frames: Sequence[int], names: Sequence[str],
              tags: Sequence[str], species: Sequence[str | None], min_confidence: float,
              top_k: int = 5, k: int = FRAMES_K) -> Aggregate:
    """One result from per-view slot probabilities (see the module docstring for the rule)."""
    p = np.atleast_2d(np.asarray(slot_probs, np.float32))
    if len(p) != len(view_frames) or p.shape[1] != len(names):
        raise ValueError(f"{p.shape} scores for {len(view_frames)} views and {len(names)} slots")
    view_tags = tag_scores(p, tags)
    scores = event_tag_scores(view_tags, view_frames, k)
    best_t = int(np.argmax(scores))
    tag, confidence = TAGS[best_t], float(scores[best_t])
    best_view = int(np.argmax(view_tags[:, best_t]))
    label_scores = pool(p, view_frames, k)
    in_tag = np.array([t == TAGS[best_t] for t in tags])
    if confidence < min_confidence:
        top = int(np.argmax(label_scores))
        tag, spec, label = UNKNOWN, None, (names[top] if label_scores[top] > 0 else None)
    else:
        label = names[int(np.argmax(np.where(in_tag, label_scores, -1.0)))]
        spec = None if tag == BLANK else _best_species(p, view_frames, species, in_tag, k)
    order = [i for i in np.argsort(-label_scores, kind="stable")[:top_k] if label_scores[i] > 0]
    return Aggregate(
        tag=tag, confidence=round(confidence, 4), species=spec, label=label, best_view=best_view,
        tag_scores={t: round(float(s), 4) for t, s in zip(TAGS, scores)},
        top_k=[{"label": names[i], "tag": tags[i], "p": round(float(label_scores[i]), 4)} for i in order])


def _best_species(p: np.ndarray, view_frames: Sequence[int], species: Sequence[str | None],
                  in_tag: np.ndarray, k: int) -> str | None:
    names = sorted({s for s, ok in zip(species, in_tag) if ok and s})
    if not names:
        return None
    m = np.zeros((len(species), len(names)), np.float32)
    for i, (s, ok) in enumerate(zip(species, in_tag)):
        if ok and s:
            m[i, names.index(s)] = 1.0
    return names[int(np.argmax(pool(p @ m, view_frames, k)))]
