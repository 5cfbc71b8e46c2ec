"""Database connections for request handlers, which run on a pool of worker threads.

A :class:`~station.collector.db.Database` holds one connection for one thread at a time.
SQLite connections cannot move between threads at all, and opening one costs about as
much as a query, so each SQLite request opens its own. PostgreSQL connections are kept
in a small idle pool and lent to one request at a time; one that failed is closed, not
returned, so a restarted server is reconnected on the next request.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from station.collector.db import Database, StorageError


class Databases:
    def __init__(self, url: str, max_idle: int = 4):
        self.url = url
        self.pooled = url.split(":", 1)[0].lower() in ("postgresql", "postgres")
        self.max_idle = max_idle
        self._idle: list[Database] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """A database for this request; raises StorageError when it cannot be opened. A
        connection that raised StorageError is closed, not pooled again."""
        db = None
        if self.pooled:
            with self._lock:
                db = self._idle.pop() if self._idle else None
        if db is None:
            db = Database.open(self.url)
        broken = False
        try:
            yield db
        except StorageError:
            broken = True
            raise
        finally:
            self._release(db, keep=self.pooled and not broken)

    def _release(self, db: Database, keep: bool) -> None:
        with self._lock:
            if keep and not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(db)
                return
        db.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()
