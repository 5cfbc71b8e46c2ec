"""Progress of long commands on a terminal, drawn by one kept library (tqdm).

    with progress("evaluate", total=len(items), unit="picture") as bar:
        for item in items:
            ...
            bar.advance(name=item.name)      # or bar(done, total, name) as a callback

On a terminal a bar is drawn on stderr; when stderr is not a terminal (systemd, CI, a
pipe) nothing is drawn, so logs stay free of carriage returns. Library code takes an
optional callback ``(done, total, name)``; only commands make bars.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, TextIO

from tqdm import tqdm


class Progress:
    """A bar to advance, or to call as ``bar(done, total, name)`` from library code."""

    def __init__(self, bar: tqdm):
        self._bar = bar

    @property
    def drawn(self) -> bool:
        return not self._bar.disable

    def __call__(self, done: int, total: int | None, name: str = "") -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if name:
            self._bar.set_postfix_str(name[:40], refresh=False)
        self._bar.refresh()

    def advance(self, n: int = 1, name: str = "") -> None:
        if name:
            self._bar.set_postfix_str(name[:40], refresh=False)
        self._bar.update(n)


@contextmanager
def progress(description: str, *, total: int | None = None, unit: str = "it",
             stream: TextIO | None = None, force: bool | None = None) -> Iterator[Progress]:
    """A progress bar for a command. ``force``: True draws even off a terminal (tests),
    False never draws; None (default) draws only when ``stream`` (stderr) is a terminal."""
    stream = stream or sys.stderr
    disable = {True: False, False: True, None: not _is_terminal(stream)}[force]
    bar = tqdm(total=total, desc=description, unit=unit, file=stream, disable=disable, leave=False,
               dynamic_ncols=True, mininterval=0.2)
    try:
        yield Progress(bar)
    finally:
        bar.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
