"""Strict JSON (I-JSON) for the feed: what every consumer reads alike, and what it cannot."""

from __future__ import annotations

import json

import pytest

from station.feed import strict_json


@pytest.mark.parametrize("text, words", [
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": 1e309}', "too large for a double"),
    ('{"a": -2.5e400}', "too large for a double"),
    ('{"a": ' + "1" * 320 + "}", "integer of 320 digits"),
    ('{"a": ' + "1" * 5000 + "}", "not usable JSON"),
    ('{"a": "\\ud800"}', "a: text with a lone surrogate"),
    ('{"a": ["x", {"\\udfff": 1}]}', "a[1].'\\udfff': a key with a lone surrogate"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_what_python_would_read_but_no_other_reader_alike_is_refused(text, words):
    with pytest.raises(strict_json.StrictJsonError) as err:
        strict_json.loads(text)
    assert words in str(err.value)


def test_real_text_and_ordinary_numbers_read_as_json_does():
    text = '{"emoji": "\\ud83d\\udc06", "path": "c:\\\\u0000", "n": 1.7976931348623157e308, "i": -12, "e": 1e-300}'
    assert strict_json.loads(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        strict_json.loads("{")


def test_a_nul_is_found_where_it_is_in_keys_and_values():
    assert strict_json.nul_at({"a": [{"b": "x\x00"}]}) == "a[0].b"
    assert strict_json.nul_at({"a\x00": 1}) == "'a\\x00'"
    assert strict_json.nul_at({"path": "c:\\u0000"}) is None  # a backslash and "u0000": no NUL


@pytest.mark.parametrize("value, words", [
    ({"a": float("nan")}, "a: nan"),
    ({"a": [1, float("inf")]}, "a[1]: inf"),
    ({"a": 10 ** 309}, "a: an integer too large"),
    ({"a": {"b": "\ud800"}}, "a.b: text with a lone surrogate"),
    ({"\ud800": 1}, "a key with a lone surrogate"),
    ({"a": "x\x00y"}, "a: text with a NUL"),
    ({"a": {1, 2}}, "a: a set is not a JSON value"),
])
def test_a_value_read_elsewhere_is_checked_alike(value, words):
    found = strict_json.problem(value, "payload")
    assert found is not None and words in found and found.startswith("payload")
    found.encode("utf-8")  # the sentence itself is clean text


def test_a_clean_value_passes_and_a_literal_backslash_u0000_is_no_nul():
    assert strict_json.problem({"a": [1, 2.5, None, True, "c:\\u0000", "\U0001f406"], "b": {"c": 10 ** 300}}) is None
