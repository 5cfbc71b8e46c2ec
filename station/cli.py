"""``station``: the command line, a thin layer over the library.

    station run --config FILE [--camera URI] [--duration S] [--speed max] [--data-dir DIR]
    station selftest --config FILE [--json]
    station config check FILE | station config check-collector FILE
    station events (--data-dir DIR | --config FILE) [--json]
    station scene [--seed N] [--duration S] [--json]
    station bench motion|classifier|feed|collector|dashboard|pipeline [--json]
    station classify IMAGE... [--json] | station evaluate DIR [--json]
    station collector --config FILE [--no-http] [--duration S]
    station alerts test --config FILE
    station provision NAME [--role station|collector|researcher|operator] ...
    station demo [--duration S]
    station export camtrap-dp|csv --config FILE --out PATH | station export validate DIR

Each command group lives in :mod:`station.commands` with its options beside its
handler; this module builds the parser from them and maps errors to exit codes:
0 success, 1 the command ran and found a problem, 2 bad input (config, arguments,
files), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

from station import __version__
from station.commands import GROUPS
from station.config import ConfigError
from station.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station", description="Camera-trap field station")
    parser.add_argument("--version", action="version", version=f"station {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("info")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"station: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `station events | head`
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
