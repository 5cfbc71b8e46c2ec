"""``station events``: list the events in a station's store; ``station scene``: what a
synthetic scene will contain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from station.args import seconds
from station.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser("events", help="list the events in a station's store")
    events.add_argument("--data-dir", type=Path)
    events.add_argument("--config", type=Path)
    events.add_argument("--json", action="store_true")
    events.set_defaults(func=cmd_events)

    scene = sub.add_parser("scene", help="show what a synthetic scene will contain (its ground truth)")
    scene.add_argument("--seed", type=int, default=0)
    scene.add_argument("--duration", type=seconds, default=600.0)
    scene.add_argument("--json", action="store_true")
    scene.set_defaults(func=cmd_scene)


def cmd_events(args: argparse.Namespace) -> int:
    from station.events.listing import listing
    from station.events.store import EventStore

    if args.data_dir:
        data_dir = Path(args.data_dir)
    elif args.config:
        data_dir = load_config(args.config).storage.data_dir
    else:
        print("station events: give --data-dir DIR or --config FILE", file=sys.stderr)
        return 2
    if not data_dir.is_dir():
        print(f"station events: {data_dir}: no such directory", file=sys.stderr)
        return 2
    lines, records, malformed = listing(EventStore(data_dir))
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        print()
        for problem in malformed:
            print(f"station events: malformed: {problem}", file=sys.stderr)
    else:
        print("\n".join(lines))
    return 1 if malformed else 0


def cmd_scene(args: argparse.Namespace) -> int:
    from station.camera.synthetic import build_schedule

    schedule = build_schedule(args.seed, args.duration)
    data = schedule.to_dict()
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        print()
        return 0
    print(f"synthetic scene seed {args.seed}, {args.duration:g} s")
    for c in data["crossings"]:
        print(f"  crossing  {c['start_s']:8.1f} – {c['end_s']:8.1f} s  {c['kind']}{' (night)' if c.get('night') else ''}")
    for d in data["disturbances"]:
        print(f"  quiet     {d['start_s']:8.1f} – {d['end_s']:8.1f} s  {d['kind']}")
    return 0
