"""Unique, time-sortable event ids: UUID version 7 (RFC 9562).

The first 48 bits are the event's start in Unix milliseconds, so ids sort by time as
strings and as database UUIDs; 74 random bits keep ids from different stations apart.
"""

from __future__ import annotations

import os
import uuid


def new_event_id(timestamp: float, rand: bytes | None = None) -> str:
    ms = int(timestamp * 1000) & ((1 << 48) - 1)
    rnd = int.from_bytes(rand if rand is not None else os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | (((rnd >> 62) & 0xFFF) << 64) | (0b10 << 62) | (rnd & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def event_id_time(event_id: str) -> float:
    """The start time (epoch seconds, millisecond precision) encoded in an event id."""
    return (uuid.UUID(event_id).int >> 80) / 1000.0
