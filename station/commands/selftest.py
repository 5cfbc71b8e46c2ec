"""``station selftest``: one screen a ranger can read: camera, model, disk, clock, broker, schedule."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from station.args import seconds
from station.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction) -> None:
    selftest = sub.add_parser("selftest", help="check camera, model, disk, clock, broker and schedule "
                                               "(exit 0 all OK, 1 warnings, 2 failures)")
    selftest.add_argument("--config", required=True, type=Path, help="station TOML file")
    selftest.add_argument("--json", action="store_true")
    selftest.add_argument("--timeout", type=seconds, default=10.0, help="seconds each check may take (default 10)")
    selftest.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    from station.selftest import exit_code, format_report, run_selftest

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        if args.json:
            json.dump({"checks": [{"name": "config", "level": "FAIL", "message": str(exc)}], "exit_code": 2},
                      sys.stdout, indent=1)
            print()
        else:
            print(f"FAIL  config    {exc}")
        return 2
    checks = run_selftest(cfg, timeout_s=args.timeout)
    if args.json:
        json.dump({"station_id": cfg.station.id, "checks": [c.to_dict() for c in checks],
                   "exit_code": exit_code(checks)}, sys.stdout, indent=1)
        print()
    else:
        print(format_report(cfg, checks, config_path=args.config))
    return exit_code(checks)
