"""The project's words are defined once (station.vocabulary); the feed's JSON Schemas, the
AsyncAPI document, the config models and the Camtrap DP export must say the same."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import yaml

from station import vocabulary as v
from station.collector.export import OBSERVATION_TYPES
from station.config.collector import AlertsSection
from station.feed.schema import MAJOR, SCHEMA_DIR, load_schema

ROOT = Path(__file__).resolve().parents[1]


def _find(node, key: str, path: str = ""):
    """(path, value) of every ``key`` anywhere in a JSON document."""
    if isinstance(node, dict):
        for k, val in node.items():
            if k == key:
                yield path, val
            yield from _find(val, key, f"{path}/{k}")
    elif isinstance(node, list):
        for i, val in enumerate(node):
            yield from _find(val, key, f"{path}[{i}]")


def test_every_message_kind_has_a_schema_and_every_schema_a_kind():
    files = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert files == set(v.SCHEMA_KINDS)
    for kind in v.SCHEMA_KINDS:
        assert load_schema(kind)["properties"]["schema"]["const"] == f"{kind}/{MAJOR}"
    assert set(v.STORED_KINDS) <= set(v.MESSAGE_KINDS)


def test_the_detection_schema_lists_exactly_the_tags():
    detection = load_schema("detection")
    assert tuple(detection["properties"]["tag"]["enum"]) == v.TAGS
    assert tuple(detection["properties"]["top_k"]["items"]["properties"]["tag"]["enum"]) == v.CLASSIFIER_TAGS


def test_every_id_pattern_in_the_schemas_is_the_vocabularys():
    for kind in v.SCHEMA_KINDS:
        schema = load_schema(kind)
        ids = [(p, val) for p, val in _find(schema, "pattern")
               if p.endswith(("station_id", "deployment_id"))]
        assert ids, f"{kind}: no station_id pattern found"
        for path, pattern in ids:
            assert pattern == v.ID_PATTERN, f"{kind}.schema.json {path}"


def test_commands_are_the_same_in_both_command_schemas():
    assert tuple(load_schema("command")["properties"]["command"]["enum"]) == v.COMMANDS
    assert tuple(load_schema("command_result")["properties"]["command"]["enum"]) == v.COMMANDS


def test_the_asyncapi_document_names_every_message_kind():
    doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    text = json.dumps(doc)
    for kind in v.SCHEMA_KINDS:
        assert f"{kind}.schema.json" in text, f"docs/asyncapi.yaml does not reference {kind}.schema.json"


def test_every_tag_has_a_camtrap_dp_observation_type_and_can_be_alerted_on():
    table = json.loads((ROOT / "station/collector/camtrap_dp/observations-table-schema.json").read_text())
    field = next(f for f in table["fields"] if f["name"] == "observationType")
    assert set(OBSERVATION_TYPES) == set(v.TAGS)
    assert set(OBSERVATION_TYPES.values()) <= set(field["constraints"]["enum"])
    alertable = typing.get_args(typing.get_args(AlertsSection.model_fields["tags"].annotation)[0])
    assert tuple(alertable) == v.TAGS
