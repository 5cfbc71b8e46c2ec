"""``station events``: list the events in a station's store; ``station scene``: what a
synthetic scene will contain."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from station.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser("events", help="list the events in a station's store")
    events.add_argument("--data-dir", type=Path)
    events.add_argument("--config", type=Path)
    events.add_argument("--json", action="store_true")
    events.set_defaults(func=cmd_events)

    scene = sub.add_parser("scene", help="show what a synthetic scene will contain (its ground truth)")
    scene.add_argument("--seed", type=int, default=0)
    scene.add_argument("--duration", type=float, default=600.0)
    scene.add_argument("--json", action="store_true")
    scene.set_defaults(func=cmd_scene)


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4] + "Z"


def cmd_events(args: argparse.Namespace) -> int:
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
    records = list(EventStore(data_dir).records())
    if args.json:
        json.dump(records, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'event id':36}  {'start (UTC)':23}  {'length':>7}  {'stills':>6}  {'pre':>5}  {'status':7}  end reason")
    for r in records:
        end = r.get("end_timestamp")
        length = f"{end - r['start_timestamp']:.1f}s" if end is not None else "-"
        stills = sum(1 for f in r.get("frames", []) if f.get("file"))
        print(f"{r['id']:36}  {_fmt_time(r['start_timestamp']):23}  {length:>7}  {stills:>6}  "
              f"{r.get('pre_trigger_s', 0):>4.1f}s  {r.get('status', '?'):7}  {r.get('end_reason') or '-'}")
    print(f"{len(records)} event(s) in {data_dir}")
    return 0


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
