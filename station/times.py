"""Times as the project writes them: RFC 3339 in UTC with milliseconds
(``2026-11-25T18:02:11.400Z``), the form of every time in event records, feed messages,
the database and exports."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC with milliseconds; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
