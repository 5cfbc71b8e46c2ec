"""The clock of replayed and simulated media.

A replay carries its own time: frame ``n`` of a 10 fps clip happened ``n / 10`` seconds
after the clip began. :class:`MediaClock` maps media time to wall time from a start
time the user can set, and, at ``speed="realtime"``, sleeps so that frames are handed
out no faster than they were recorded. At ``speed="max"`` it never sleeps.
"""

from __future__ import annotations

import time
from datetime import datetime


class MediaClock:
    def __init__(self, start_time: datetime | float | None = None, realtime: bool = True,
                 sleep=time.sleep, monotonic=time.monotonic):
        if isinstance(start_time, datetime):
            start = start_time.timestamp()
        elif start_time is None:
            start = time.time()
        else:
            start = float(start_time)
        self.start = start
        self.realtime = realtime
        self._sleep = sleep
        self._monotonic = monotonic
        self._t0: float | None = None

    def timestamp(self, media_seconds: float) -> float:
        """Epoch seconds of the moment ``media_seconds`` into the media."""
        return self.start + media_seconds

    def wait_until(self, media_seconds: float) -> None:
        """At real speed, block until ``media_seconds`` have passed since the first call."""
        if not self.realtime:
            return
        now = self._monotonic()
        if self._t0 is None:
            self._t0 = now - media_seconds
            return
        delay = self._t0 + media_seconds - now
        if delay > 0:
            self._sleep(delay)
