"""``station bench NAME``: the benchmarks of :data:`station.bench.BENCHES`, each a module
with ``add_arguments``, ``run`` and ``print_report``; a module is imported only when its
bench is asked for (``station --help`` stays quick on a Pi)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys

from station.bench import BENCHES


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


def cmd_bench(args: argparse.Namespace) -> int:
    module = args.bench
    report = module.run(**run_options(args, module.run))
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        module.print_report(report)
    return 0
