"""``station demo``: a simulated station on this machine, printing events as they close.

It runs the real daemon (motion, events, store) on the synthetic forest scene, so a
newcomer sees the pipeline work within a minute, with nothing but Python installed.
Later stages (classifier, MQTT feed, collector) join the demo as they land.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from station.config import parse_config
from station.log import setup_logging


def demo_config(data_dir: Path, seed: int, pictures: Path | None, speed: str) -> dict:
    camera = {"uri": f"synthetic:{seed}", "fps": 10, "speed": speed,
              "main_size": [960, 540], "lores_size": [320, 180]}
    if pictures is not None:
        camera["scene_pictures"] = str(pictures)
    return {
        "station": {
            "id": "demo-01", "deployment_id": "demo-01-simulated",
            # Land of the Leopard National Park, Primorsky Krai.
            "latitude": 43.105, "longitude": 131.565,
            "location_name": "simulated game trail", "habitat": "synthetic mixed forest",
            "camera_height_m": 0.8, "camera_heading_deg": 180, "feature_type": "trailGame",
        },
        "camera": camera,
        "storage": {"data_dir": str(data_dir), "min_free_mb": 50},
        "logging": {"level": "warning"},
    }


def describe_classification(result: dict | None) -> str:
    if not result:
        return ""
    if result.get("status") != "ok":
        return f"-> classification failed: {result.get('error')}"
    species = f" ({result['species']})" if result.get("species") and result["species"] != result["tag"] else ""
    return f"-> {result['tag']}{species} {result['confidence']:.2f}, model saw '{result.get('label')}'"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S")


def run_demo(duration: float | None, data_dir: Path | None, seed: int, pictures: Path | None,
             speed: str = "realtime", out=sys.stdout) -> int:
    from station.cli import run_station

    if pictures is not None and not Path(pictures).is_dir():
        print(f"station demo: --pictures {pictures}: no such folder", file=sys.stderr)
        return 2
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="station-demo-"))
    cfg = parse_config(demo_config(Path(data_dir), seed, pictures, speed), "station demo")
    setup_logging(cfg.logging.level)

    def on_event(record: dict) -> None:
        stills = sum(1 for f in record["frames"] if f.get("file"))
        length = record["end_timestamp"] - record["start_timestamp"]
        print(f"  event {record['id'][:13]}…  {_clock(record['start_timestamp'])}  {length:5.1f} s  "
              f"{stills:3d} stills  starts {record['pre_trigger_s']:.1f} s before the trigger  "
              f"{describe_classification(record.get('classification'))}", file=out, flush=True)

    print(f"Simulated station {cfg.station.id} watching synthetic scene {seed} "
          f"({'until Ctrl-C' if duration is None else f'{duration:g} s'}).", file=out)
    print(f"Events go to {data_dir}; list them with: station events --data-dir {data_dir}", file=out, flush=True)
    code = run_station(cfg, duration, on_event=on_event)
    truth_path = Path(data_dir) / "scene_truth.json"
    if truth_path.is_file():
        import json

        truth = json.loads(truth_path.read_text())
        crossings = truth.get("crossings", [])
        print(f"The scene held {len(crossings)} crossing(s): "
              + ", ".join(f"{c['kind']} at {_clock(c['start_ts'])}" for c in crossings), file=out)
    return code
