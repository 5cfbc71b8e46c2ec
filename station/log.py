"""Structured (logfmt) logging: ``ts=... level=info logger=events msg=closed id=... frames=12``.

Every module gets a :class:`FieldLogger` with :func:`get_logger` and passes facts as
keyword arguments, so lines stay greppable in ``journalctl -u station``::

    log = get_logger("events")
    log.info("closed", id=event.id, frames=12)
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

_RESERVED = "fields"


def _quote(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """Formats a record as one logfmt line; fields given as kwargs follow the message."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name.removeprefix('station.')}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in getattr(record, _RESERVED, {}).items():
            parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class FieldLogger:
    """A thin wrapper over :class:`logging.Logger` taking facts as keyword arguments."""

    def __init__(self, name: str):
        self._log = logging.getLogger(name if name.startswith("station") else f"station.{name}")

    def _emit(self, level: int, msg: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._log.isEnabledFor(level):
            self._log.log(level, msg, exc_info=exc_info, extra={_RESERVED: fields}, stacklevel=3)

    def debug(self, msg: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._emit(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._emit(logging.WARNING, msg, False, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._emit(logging.ERROR, msg, False, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._emit(logging.ERROR, msg, True, fields)


def get_logger(name: str) -> FieldLogger:
    return FieldLogger(name)


def setup_logging(level: str = "info", stream=None) -> None:
    """Configure the ``station`` logger tree once, at the edge (the CLI)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("station")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
