"""``station bench NAME``: the benchmarks of :data:`station.bench.BENCHES`, each a module
with ``add_arguments``, ``run`` and ``print_report``; a module is imported only when its
bench is asked for (``station --help`` stays quick on a Pi).

Every report says where it was measured (``machine``: the board, CPU, kernel, Python and
package versions, :mod:`station.bench.machine`); ``--json`` prints it, ``--out FILE``
writes it: the file a user sends from a real board (docs/performance.md)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

from station import __version__, times
from station.bench import BENCHES
from station.files import atomic_write


class _BenchParser(argparse.ArgumentParser):
    """A bench's parser: its options come from the bench module, loaded at first use."""

    def __init__(self, *args, module: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._module_name = module
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        module = importlib.import_module(self._module_name)
        module.add_arguments(self)
        self.add_argument("--json", action="store_true", help="print the report as JSON")
        self.add_argument("--out", type=Path, metavar="FILE",
                          help="also write the report as JSON to FILE, with this machine's identity: "
                               "the file to send from a real board (docs/performance.md)")
        self.set_defaults(bench=module)
        self._loaded = True

    def parse_known_args(self, args=None, namespace=None):
        self._load()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._load()
        return super().format_help()


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = bench.add_subparsers(dest="bench_command", required=True, parser_class=_BenchParser)
    for name, (module, help_text) in BENCHES.items():
        bsub.add_parser(name, help=help_text, description=help_text, module=module)
    bench.set_defaults(func=cmd_bench)


def run_options(args: argparse.Namespace, run) -> dict:
    """The parsed options that are keywords of the bench's ``run``."""
    return {name: getattr(args, name) for name in inspect.signature(run).parameters if hasattr(args, name)}


def out_problem(out: Path) -> str | None:
    """Why the report could not be written to ``out``, found before a long run rather than after."""
    if out.is_dir():
        return f"--out {out}: is a folder; name a file"
    if not out.parent.is_dir():
        return f"--out {out}: no such folder {out.parent}"
    if not os.access(out.parent, os.W_OK):
        return f"--out {out}: the folder {out.parent} is not writable"
    return None


def identified(name: str, report: dict) -> dict:
    """The report with what it was measured on: the bench's name, the station's version, when,
    and the machine's identity (the bench's own ``machine`` figures, such as the load, kept)."""
    from station.bench.machine import identity

    return {"bench": name, "station_version": __version__, "measured_at": times.format(time.time()),
            **report, "machine": {**identity(), **report.get("machine", {})}}


def cmd_bench(args: argparse.Namespace) -> int:
    from station.bench.machine import summary_line

    module = args.bench
    out = getattr(args, "out", None)
    if out is not None and (problem := out_problem(out)):
        print(f"station bench: {problem}", file=sys.stderr)
        return 2
    report = identified(args.bench_command, module.run(**run_options(args, module.run)))
    text = json.dumps(report, indent=1) + "\n"
    if args.json:
        sys.stdout.write(text)
    else:
        print(f"Machine: {summary_line(report['machine'])}\n")
        module.print_report(report)
    if out is not None:
        try:
            atomic_write(out, text)
        except OSError as exc:
            print(f"station bench: --out {out}: {exc.strerror or exc}", file=sys.stderr)
            if not args.json:
                sys.stdout.write(text)  # the figures are not lost
            return 1
        print(f"station bench: wrote {out}", file=sys.stderr)
    return 0
