"""The ``station`` command's front door: one module per command group.

Each module has ``register(subparsers)``, which adds its commands with their options
beside the handlers that read them (``cmd_<name>(args) -> exit code``). Handlers import
what they need when they run, so ``station --help`` and ``station selftest`` on a Pi do
not load the collector, the model or the benchmarks. Add a command group: a module here
and a line in :data:`GROUPS`.
"""

from station.commands import (bench, classify, collector, config, demo, events, export, provision, run,
                              selftest)

GROUPS = (run, selftest, config, events, bench, classify, collector, provision, demo, export)
"""In the order ``station --help`` lists them."""
