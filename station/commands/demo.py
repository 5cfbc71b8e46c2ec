"""``station demo``: a broker, a collector with its dashboard and two simulated stations on
this machine (:mod:`station.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from station.args import seconds


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="broker, collector with dashboard and two simulated stations on this machine")
    demo.add_argument("--duration", type=seconds, default=None, help="stop after S seconds (default: until Ctrl-C)")
    demo.add_argument("--data-dir", type=Path, default=None,
                      help="where stations, broker and collector keep data (default: a temporary folder)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--pictures", type=Path, default=None,
                      help="folder of real animal pictures to walk across the scene")
    demo.add_argument("--speed", choices=["realtime", "max"], default="realtime")
    demo.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                      help="Mosquitto on a free port when installed (auto), or the embedded Python broker")
    demo.add_argument("--port", type=int, default=8080, help="dashboard port (a free one if taken)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from station.demo import run_demo

    return run_demo(duration=args.duration, data_dir=args.data_dir, seed=args.seed,
                    pictures=args.pictures, speed=args.speed, broker_kind=args.broker, port=args.port)
