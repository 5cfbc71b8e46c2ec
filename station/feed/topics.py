"""The MQTT topic tree: where each message of the feed lives.

    {prefix}/{station_id}/detection              station -> all   QoS 1
    {prefix}/{station_id}/status                 station -> all   QoS 1, retained (also the will)
    {prefix}/{station_id}/health                 station -> all   QoS 0, retained
    {prefix}/{station_id}/thumbnail              station -> all   QoS 1
    {prefix}/{station_id}/command/{name}         operators -> station   QoS 1 (snapshot, reload)
    {prefix}/{station_id}/command_result         station -> operators   QoS 1
    {prefix}/_feed/generalised/{station_id}/detection   collector -> researchers   QoS 1
    {prefix}/_feed/exact/{station_id}/detection         collector -> trusted accounts   QoS 1

The collector republishes what it stored under ``{prefix}/_feed/``: a level that starts with
``_`` can never be a station id, so no station can publish there or be confused with it.

``prefix`` is ``camtrap/v1`` unless configured otherwise. :data:`DELIVERY` holds the
QoS and retain flag of each kind, so the publisher and the docs read them from one
place. :func:`parse_topic` takes a topic apart and names what is wrong with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_PREFIX = "camtrap/v1"

from station.vocabulary import COMMANDS, ID_PATTERN
from station.vocabulary import MESSAGE_KINDS as KINDS

STATION_ID_PATTERN = ID_PATTERN
_STATION_ID = re.compile(STATION_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Delivery:
    qos: int
    retain: bool


DELIVERY: dict[str, Delivery] = {
    "detection": Delivery(qos=1, retain=False),
    "status": Delivery(qos=1, retain=True),
    "health": Delivery(qos=0, retain=True),
    "thumbnail": Delivery(qos=1, retain=False),
    "command": Delivery(qos=1, retain=False),
    "command_result": Delivery(qos=1, retain=False),
}


class TopicError(ValueError):
    """A topic, prefix, station id or command name that does not fit the tree; names which."""


def check_station_id(station_id: str) -> str:
    if not isinstance(station_id, str) or not _STATION_ID.fullmatch(station_id):
        raise TopicError(f"station id {station_id!r} is not valid: 1-64 characters, letters, digits, "
                         "'_', '.', '-', starting with a letter or digit")
    return station_id


def check_prefix(prefix: str) -> str:
    """A prefix is one or more non-empty topic levels with no wildcards, no leading '$'."""
    if not isinstance(prefix, str) or not prefix:
        raise TopicError("topic prefix is empty")
    if prefix.startswith("$"):
        raise TopicError(f"topic prefix {prefix!r} starts with '$' (reserved for the broker)")
    for level in prefix.split("/"):
        if not level:
            raise TopicError(f"topic prefix {prefix!r} has an empty level (leading, trailing or double '/')")
        if "+" in level or "#" in level or "\x00" in level:
            raise TopicError(f"topic prefix {prefix!r} contains a wildcard or NUL in level {level!r}")
    return prefix


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one station: ``Topics("lazovsky-07").detection``."""

    station_id: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_station_id(self.station_id)
        check_prefix(self.prefix)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.station_id}"

    @property
    def detection(self) -> str:
        return f"{self.base}/detection"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def thumbnail(self) -> str:
        return f"{self.base}/thumbnail"

    @property
    def command_result(self) -> str:
        return f"{self.base}/command_result"

    def command(self, name: str) -> str:
        if name not in COMMANDS:
            raise TopicError(f"command {name!r} is not one of {', '.join(COMMANDS)}")
        return f"{self.base}/command/{name}"

    @property
    def commands(self) -> str:
        """The filter the station subscribes to for its commands."""
        return f"{self.base}/command/+"

    def of(self, kind: str) -> str:
        """The topic of a kind that has no further level (everything but ``command``)."""
        if kind == "command" or kind not in KINDS:
            raise TopicError(f"kind {kind!r} is not one of {', '.join(k for k in KINDS if k != 'command')}")
        return f"{self.base}/{kind}"


FEED_LEVEL = "_feed"
"""The collector's republished feed lives under ``{prefix}/_feed/``; no station id starts with '_'."""
FEEDS = ("generalised", "exact")


def feed_topic(station_id: str, feed: str = "generalised", prefix: str = DEFAULT_PREFIX) -> str:
    """Where the collector republishes a stored detection of ``station_id``."""
    if feed not in FEEDS:
        raise TopicError(f"feed {feed!r} is not one of {', '.join(FEEDS)}")
    return f"{check_prefix(prefix)}/{FEED_LEVEL}/{feed}/{check_station_id(station_id)}/detection"


def feed_filter(feed: str = "generalised", prefix: str = DEFAULT_PREFIX) -> str:
    """The subscription filter for one republished feed, e.g. ``camtrap/v1/_feed/generalised/+/detection``."""
    if feed not in FEEDS:
        raise TopicError(f"feed {feed!r} is not one of {', '.join(FEEDS)}")
    return f"{check_prefix(prefix)}/{FEED_LEVEL}/{feed}/+/detection"


def all_stations(kind: str, prefix: str = DEFAULT_PREFIX) -> str:
    """A subscription filter for one kind from every station, e.g. ``camtrap/v1/+/detection``."""
    if kind not in KINDS:
        raise TopicError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    suffix = "command/+" if kind == "command" else kind
    return f"{check_prefix(prefix)}/+/{suffix}"


class ParsedTopic(NamedTuple):
    station_id: str
    kind: str
    rest: str | None
    """The command name for ``command`` topics, else None."""


def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> ParsedTopic:
    """``(station_id, kind, rest)`` of a feed topic; :class:`TopicError` says what does not fit."""
    check_prefix(prefix)
    if not isinstance(topic, str):
        raise TopicError(f"topic {topic!r} is not a string")
    head = prefix + "/"
    if not topic.startswith(head):
        raise TopicError(f"topic {topic!r} is not under the prefix {prefix!r}")
    levels = topic[len(head):].split("/")
    station_id = levels[0]
    if len(levels) < 2:
        raise TopicError(f"topic {topic!r} has no message kind after the station id")
    try:
        check_station_id(station_id)
    except TopicError as exc:
        raise TopicError(f"topic {topic!r}: {exc}") from None
    kind = levels[1]
    if kind not in KINDS:
        raise TopicError(f"topic {topic!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "command":
        if len(levels) != 3 or not levels[2]:
            raise TopicError(f"topic {topic!r}: a command topic ends in the command name "
                             f"({', '.join(COMMANDS)})")
        if levels[2] not in COMMANDS:
            raise TopicError(f"topic {topic!r}: command {levels[2]!r} is not one of {', '.join(COMMANDS)}")
        return ParsedTopic(station_id, kind, levels[2])
    if len(levels) != 2:
        raise TopicError(f"topic {topic!r}: nothing may follow {kind!r}")
    return ParsedTopic(station_id, kind, None)
