"""Reserved: version 7 belongs to a branch merged beside this one (the lead replaces this file)."""

from __future__ import annotations

from station.collector.migrations import Dialect


def statements(d: Dialect) -> list[str]:
    # Migrations are numbered without gaps; this branch's v0008 needs a 6 and a 7 before it.
    # When the branches that own 6 and 7 are merged, their files replace this one (two files
    # with one number are an error that discover() reports).
    return []
