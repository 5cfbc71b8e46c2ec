"""Many views of an event become one verdict: synthetic probability vectors, no model."""

from __future__ import annotations

import numpy as np
import pytest

from station.classifier.aggregate import aggregate, event_tag_scores, over_frames, per_frame, tag_scores
from station.classifier.taxonomy import TAGS

# A tiny slot space: two prey species, a leopard, a person's jacket and two scenery labels.
NAMES = ["leopard", "wild boar", "deer", "jeans", "valley", "fence"]
SLOT_TAGS = ["leopard", "prey", "prey", "human", "blank", "blank"]
SPECIES = ["leopard", "boar", "deer", "clothing", None, None]


def vec(**p: float) -> np.ndarray:
    v = np.zeros(len(NAMES), np.float32)
    for name, value in p.items():
        v[NAMES.index(name.replace("_", " "))] = value
    return v


def run(views: list[np.ndarray], frames: list[int], threshold: float = 0.4, top_k: int = 5):
    return aggregate(np.stack(views), frames, NAMES, SLOT_TAGS, SPECIES, threshold, top_k)


def test_leopard_seen_only_in_the_crop_wins_over_the_empty_looking_whole_frame():
    whole = vec(valley=0.8, leopard=0.05)
    crop = vec(leopard=0.7, fence=0.2)
    r = run([whole, crop], [0, 0])
    assert (r.tag, r.species, r.label) == ("leopard", "leopard", "leopard")
    assert r.confidence == pytest.approx(0.7, abs=1e-4)
    assert r.best_view == 1  # the crop


def test_a_frame_is_blank_only_when_every_view_says_so():
    whole = vec(valley=0.9)
    crop = vec(fence=0.3, deer=0.25)
    scores = event_tag_scores(tag_scores(np.stack([whole, crop]), SLOT_TAGS), [0, 0])
    assert scores[TAGS.index("blank")] == pytest.approx(0.3, abs=1e-6)  # the min, not the max
    assert scores[TAGS.index("prey")] == pytest.approx(0.25, abs=1e-6)


def test_empty_event_with_leaves_moving_is_blank():
    views = [vec(valley=0.7, fence=0.1), vec(fence=0.6, deer=0.05), vec(valley=0.8), vec(fence=0.55)]
    r = run(views, [0, 0, 1, 1])
    assert r.tag == "blank"
    assert r.species is None
    assert r.confidence == pytest.approx((0.6 + 0.55) / 2, abs=1e-4)  # each frame its weakest view


def test_prey_species_split_over_labels_still_adds_up_to_prey():
    r = run([vec(wild_boar=0.25, deer=0.3, valley=0.3)], [0])
    assert r.tag == "prey"
    assert r.confidence == pytest.approx(0.55, abs=1e-4)
    assert r.species == "deer"


def test_one_fluke_frame_cannot_decide_an_event_of_several_frames():
    views = [vec(leopard=0.9), vec(valley=0.9), vec(valley=0.9), vec(valley=0.9)]
    frame_scores = per_frame(tag_scores(np.stack(views), SLOT_TAGS), [0, 1, 2, 3])
    leopard = over_frames(frame_scores)[TAGS.index("leopard")]
    assert leopard == pytest.approx(0.45, abs=1e-6)  # mean of the best two frames
    r = run(views, [0, 1, 2, 3], threshold=0.5)
    assert r.tag != "leopard"


def test_an_animal_seen_in_two_stills_counts_fully():
    views = [vec(leopard=0.8), vec(leopard=0.7), vec(valley=0.9), vec(valley=0.9)]
    r = run(views, [0, 1, 2, 3])
    assert r.tag == "leopard"
    assert r.confidence == pytest.approx(0.75, abs=1e-4)


def test_weak_evidence_becomes_unknown_not_a_guess():
    r = run([vec(leopard=0.3, deer=0.2, valley=0.25)], [0], threshold=0.4)
    assert r.tag == "unknown"
    assert r.species is None
    assert r.confidence == pytest.approx(0.3, abs=1e-4)
    assert r.label == "leopard"  # still says what the model leaned to


def test_all_zero_output_is_unknown_with_no_label():
    r = run([np.zeros(len(NAMES), np.float32)], [0])
    assert (r.tag, r.label, r.confidence, r.top_k) == ("unknown", None, 0.0, [])


def test_top_k_is_sorted_and_leaves_out_zero_labels():
    r = run([vec(leopard=0.5, deer=0.2, valley=0.1)], [0], top_k=5)
    assert [t["label"] for t in r.top_k] == ["leopard", "deer", "valley"]
    assert r.top_k[0] == {"label": "leopard", "tag": "leopard", "p": 0.5}
    assert len(run([vec(leopard=0.5, deer=0.2, valley=0.1)], [0], top_k=2).top_k) == 2


def test_tag_scores_cover_every_tag():
    r = run([vec(jeans=0.6)], [0])
    assert set(r.tag_scores) == set(TAGS)
    assert r.tag == "human" and r.species == "clothing"


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError):
        aggregate(np.zeros((2, len(NAMES))), [0], NAMES, SLOT_TAGS, SPECIES, 0.4)
