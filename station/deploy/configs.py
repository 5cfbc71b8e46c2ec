"""A station's and a collector's config file, made from the shipped, commented examples.

The examples (``deploy/station.example.toml``, ``deploy/collector.example.toml``) explain
every key, so a provisioned file is the example with a few keys set: the comments stay
and the file reads like the one in the docs. Editing is line-based on purpose (no TOML
writer in the standard library, and one would drop the comments); a test loads every
result with the real config loader.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

_HEADER = re.compile(r"^\[([A-Za-z0-9_.-]+)\]")
_ACTIVE = re.compile(r'^(?P<key>[A-Za-z0-9_]+)\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|[^#\s]+)\s*(?P<comment>#.*)?$')


class TemplateError(ValueError):
    """The example a config is made from lacks a section; names the file."""


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string of printable text is a TOML basic string


@dataclass
class TomlText:
    """Lines of a commented TOML file with ``set`` for top-level keys of one table."""

    lines: list[str]
    source: str

    @classmethod
    def read(cls, path: Path) -> "TomlText":
        return cls(Path(path).read_text().splitlines(), str(path))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def _span(self, table: str) -> tuple[int, int]:
        start = None
        for i, line in enumerate(self.lines):
            m = _HEADER.match(line)
            if m and start is not None:
                return start, i
            if m and m.group(1) == table:
                start = i + 1
        if start is None:
            raise TemplateError(f"{self.source}: no [{table}] table")
        return start, len(self.lines)

    def set(self, table: str, key: str, value: object | None) -> None:
        """Set ``key`` (uncommenting an example line), or comment it out when ``value`` is None."""
        start, end = self._span(table)
        pattern = re.compile(rf"^(#\s*)?{re.escape(key)}\s*=")
        for i in range(start, end):
            line = self.lines[i]
            if not pattern.match(line):
                continue
            active = _ACTIVE.match(line)
            if value is None:
                if not line.startswith("#"):
                    self.lines[i] = "# " + line
                return
            if active:  # keep the line as it was around the value: spacing, trailing comment
                self.lines[i] = line[:active.start("value")] + toml_value(value) + line[active.end("value"):]
            else:
                self.lines[i] = f"{key} = {toml_value(value)}"
            return
        if value is not None:
            while end > start and not self.lines[end - 1].strip():
                end -= 1
            self.lines.insert(end, f"{key} = {toml_value(value)}")

    def replace_table(self, table: str, body: list[str]) -> None:
        start, end = self._span(table)
        while end > start and not self.lines[end - 1].strip():
            end -= 1
        self.lines[start:end] = body


@dataclass(frozen=True)
class BrokerAccess:
    """How a provisioned client reaches the broker, as its config file names it."""

    host: str
    port: int
    username: str
    password_file: Path
    tls: bool
    ca_file: Path | None


def _broker_keys(doc: TomlText, access: BrokerAccess) -> None:
    doc.set("mqtt", "host", access.host)
    doc.set("mqtt", "port", access.port)
    doc.set("mqtt", "username", access.username)
    doc.set("mqtt", "password", None)
    doc.set("mqtt", "password_file", str(access.password_file))
    doc.set("mqtt", "tls", access.tls)
    doc.set("mqtt", "ca_file", str(access.ca_file) if access.tls and access.ca_file else None)


def station_config(template: Path, station_id: str, deployment_id: str, access: BrokerAccess,
                   latitude: float | None = None, longitude: float | None = None) -> str:
    """``station.toml`` for one station: its identity, and the feed switched on with its account."""
    doc = TomlText.read(template)
    body = [
        "# Written by `station provision`. deploy/station.example.toml explains every key of this",
        "# table (location, camera height and heading, habitat, ...): add the ones you know.",
        f"id = {toml_value(station_id)}",
        f"deployment_id = {toml_value(deployment_id)}   # Camtrap DP deploymentID: one placement at one spot",
    ]
    if latitude is not None and longitude is not None:
        body += [f"latitude = {toml_value(float(latitude))}", f"longitude = {toml_value(float(longitude))}"]
    else:
        body += ["# REQUIRED before the station starts: where the camera stands, WGS84 decimal degrees.",
                 "# latitude = 43.2412", "# longitude = 133.8857"]
    doc.replace_table("station", body)
    doc.set("mqtt", "enabled", True)
    _broker_keys(doc, access)
    return doc.text()


def collector_config(template: Path, access: BrokerAccess) -> str:
    """``collector.toml`` with the collector's broker account filled in."""
    doc = TomlText.read(template)
    _broker_keys(doc, access)
    return doc.text()
