"""``station bench pipeline``: the whole station on synthetic scenes, scored.

The real daemon (motion, events, store, classifier) runs at full speed over synthetic
scenes whose ground truth is known. For every crossing: was there an event, and which
tag did the classifier give it? The table answers "does a real ImageNet classifier
recognise the drawn animals?" and, with ``--pictures DIR``, the same for real pictures
walking across the scene.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from station.bench.scoring import Interval

# What tag each synthetic kind (or evaluation folder) should get.
EXPECTED = {"leopard": "leopard", "tiger": "tiger", "prey_boar": "prey", "prey_deer": "prey",
            "prey_hare": "prey", "human": "human", "other_animal": "other_animal", "vehicle": "vehicle"}


def run_scene(seed: int, duration_s: float, pictures: Path | None, data_dir: Path) -> dict:
    from station.config import parse_config
    from station.daemon import StationDaemon
    from station.events.store import EventStore

    camera = {"uri": f"synthetic:{seed}", "speed": "max", "main_size": [1280, 720], "lores_size": [320, 180]}
    if pictures:
        camera["scene_pictures"] = str(pictures)
    cfg = parse_config({
        "station": {"id": "bench", "deployment_id": "bench", "latitude": 43.1, "longitude": 131.5},
        "camera": camera, "storage": {"data_dir": str(data_dir), "min_free_mb": 0},
        "classifier": {"region": "none" if pictures else "russian_far_east"},
    })
    daemon = StationDaemon.build(cfg)
    started = time.monotonic()
    daemon.run(duration_s=duration_s)
    elapsed = time.monotonic() - started
    truth = daemon.camera.truth().to_dict(epoch_start=daemon.camera.clock.timestamp(0.0))
    records = list(EventStore(data_dir).records())
    rows = []
    for c in truth["crossings"]:
        if c["start_s"] >= duration_s - 5:
            continue
        span = Interval(c["start_ts"], c["end_ts"])
        hits = [r for r in records if Interval(r["start_timestamp"], r["end_timestamp"]).overlaps(span, 0.5)]
        result = (hits[0].get("classification") or {}) if hits else {}
        rows.append({"kind": c["kind"], "night": c["night"], "size": round(c["size"], 4),
                     "picture": Path(c["picture"]).name if c.get("picture") else None,
                     "found": bool(hits), "tag": result.get("tag"), "label": result.get("label"),
                     "confidence": result.get("confidence")})
    return {"seed": seed, "elapsed_s": round(elapsed, 1), "events": len(records), "crossings": rows}


def _seeds(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: give comma-separated whole numbers, e.g. 1,2,3") from None


def add_arguments(p) -> None:
    p.add_argument("--seeds", type=_seeds, default=[1, 2, 3], help="comma-separated scene seeds")
    from station.args import seconds

    p.add_argument("--duration", dest="duration_s", metavar="S", type=seconds, default=900.0,
                   help="scene seconds each")
    p.add_argument("--pictures", type=Path, default=None, help="walk real pictures across the scene instead")


def run(seeds=(1, 2, 3), duration_s: float = 900.0, pictures: Path | None = None) -> dict:
    from station.log import setup_logging

    from station.progress import progress

    setup_logging("warning")
    scenes = []
    with tempfile.TemporaryDirectory() as tmp, progress("scenes", total=len(seeds), unit="scene") as bar:
        for seed in seeds:
            bar.advance(0, name=f"seed {seed}")
            scenes.append(run_scene(seed, duration_s, pictures, Path(tmp) / f"seed-{seed}"))
            bar.advance()
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for scene in scenes:
        for row in scene["crossings"]:
            by_kind[row["kind"]][row["tag"] if row["found"] else "(no event)"] += 1
    summary = {}
    for kind, tags in sorted(by_kind.items()):
        total = sum(tags.values())
        want = EXPECTED.get(kind)
        summary[kind] = {"crossings": total, "found": total - tags["(no event)"],
                         "correct_tag": tags[want] if want else None, "tags": dict(tags)}
    return {"seeds": list(seeds), "duration_s": duration_s, "pictures": str(pictures) if pictures else None,
            "summary": summary, "scenes": scenes}


def print_report(r: dict) -> None:
    src = f"real pictures from {r['pictures']}" if r["pictures"] else "drawn animals"
    print(f"Pipeline on synthetic scenes {r['seeds']} x {r['duration_s']:g} s ({src})")
    print(f"{'kind':14} {'crossings':>9} {'found':>6} {'right tag':>9}   tags given")
    for kind, s in r["summary"].items():
        right = "-" if s["correct_tag"] is None else str(s["correct_tag"])
        tags = ", ".join(f"{t} {n}" for t, n in sorted(s["tags"].items(), key=lambda x: -x[1]))
        print(f"{kind:14} {s['crossings']:>9} {s['found']:>6} {right:>9}   {tags}")
    for scene in r["scenes"]:
        print(f"  seed {scene['seed']}: {scene['events']} events in {scene['elapsed_s']} s")


if __name__ == "__main__":
    print(json.dumps(run(seeds=(1,), duration_s=300), indent=1))
