"""Schema migrations, one module per version: ``v0001_initial.py``, ``v0002_....py``, ...

Each module has a docstring (its one-line summary is recorded) and
``statements(dialect) -> list[str]``: the DDL for ``dialect`` (``sqlite`` or ``postgresql``),
written once with :class:`Dialect`'s type names so the same migration fits both engines.
:meth:`station.collector.db.Database.migrate` applies the missing ones in order, each in
its own transaction together with its row in ``schema_migrations``. Never edit a
migration that has shipped; add the next one.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from typing import Callable

_NAME = re.compile(r"^v(\d{4})_([a-z0-9_]+)$")


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str        # "sqlite" or "postgresql"
    json: str        # a JSON document
    timestamp: str   # a UTC time: ISO 8601 text with milliseconds and 'Z' (sorts as text) on SQLite


SQLITE = Dialect("sqlite", json="TEXT", timestamp="TEXT")
POSTGRESQL = Dialect("postgresql", json="JSONB", timestamp="TIMESTAMPTZ")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    description: str
    statements: Callable[[Dialect], list[str]]


def discover() -> list[Migration]:
    """Every migration in this package, by version; a gap or a clash is an error."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        match = _NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        doc = (module.__doc__ or info.name).strip().splitlines()[0]
        found.append(Migration(int(match.group(1)), match.group(2), doc, module.statements))
    found.sort(key=lambda m: m.version)
    for expected, m in enumerate(found, start=1):
        if m.version != expected:
            raise RuntimeError(f"migrations: expected version {expected}, found v{m.version:04d}_{m.name}")
    return found
