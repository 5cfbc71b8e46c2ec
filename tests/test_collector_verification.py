"""Researchers verify events through the collector's API: a named token's tag and species,
stored beside the machine's classification (never over it) with their history, on SQLite
and PostgreSQL; the field-accuracy confusion; bad input named; only named tokens write;
location privacy still holds.

The night is the API tests' own (``tests.test_collector_api.seed_night``): the real
HttpServer over a real database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from station.collector.web.auth import TokenFileError, read_tokens
from station.vocabulary import TAGS
from tests.collector_data import (db_url, pytest_generate_tests, store_as_an_old_collector_did,  # noqa: F401
                                  stored_hostile_detections)
from tests.test_collector_api import PLACES, TOKEN, Collector, numbers, start_collector

ANNA, ANNA_TOKEN = "anna.petrova", "anna-token-5e1d0c9b7a3f4e21"
BORIS, BORIS_TOKEN = "boris", "boris-token-8c2f61d4e0a97b35"


def with_verifiers(c: Collector) -> Collector:
    """The token file gains two named researchers (re-read on change, no restart)."""
    path = c.cfg.http.token_file
    path.write_text(path.read_text() + f"{ANNA} {ANNA_TOKEN}  # verifies\n{BORIS}\t{BORIS_TOKEN}\n")
    return c


@pytest.fixture
def collector(db_url, tmp_path):
    with start_collector(db_url, tmp_path) as c:
        yield with_verifiers(c)


@pytest.fixture
def sqlite_collector(tmp_path):
    """For what does not depend on the engine (tokens, refused input)."""
    with start_collector("sqlite:///collector.sqlite3", tmp_path) as c:
        yield with_verifiers(c)


def verify(c: Collector, event_id: str, body: Any, token: str | None = ANNA_TOKEN,
           content_type: str = "application/json", **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) or not isinstance(body, (dict, list)) else json.dumps(body).encode()
    return c.client.post(f"/api/detections/{event_id}/verifications", content=content, headers=headers, **kwargs)


def stored_verifications(c: Collector) -> int:
    return int(c.db._rows("SELECT COUNT(*) AS n FROM verifications")[0]["n"])


def machine_view(c: Collector, event_id: str) -> dict[str, Any]:
    row = c.db.detection(event_id)
    row.pop("verification")
    return row


# -- the flow ---------------------------------------------------------------------------

def test_a_researcher_confirms_corrects_and_blanks_and_the_machine_answer_stays(collector):
    c, night = collector, collector.night
    leopard, boar, deer, failed = (night.detections[k]["event_id"] for k in (0, 5, 6, 7))
    before = {e: machine_view(c, e) for e in (leopard, boar, deer, failed)}

    r = verify(c, leopard, {"tag": "leopard", "species": "leopard"})  # confirmed
    assert r.status_code == 201, r.text
    item = r.json()["item"]
    assert (item["tag"], item["species"], item["verified_by"]) == ("leopard", "leopard", ANNA)
    assert item["verified_at"].endswith("Z") and r.headers["location"] == f"/api/detections/{leopard}/verifications"
    assert r.json()["machine"] == {"tag": "leopard", "species": "leopard"}
    assert verify(c, boar, {"tag": "prey", "species": "  Sika   Deer "}).json()["item"]["species"] == "sika deer"
    assert verify(c, boar, {"tag": "blank"}, token=BORIS_TOKEN).status_code == 201  # boris corrects anna
    assert verify(c, failed, {"tag": "other_animal", "species": "brown bear"}).status_code == 201

    history = c.get(f"/api/detections/{boar}/verifications").json()
    assert [(h["tag"], h["species"], h["verified_by"]) for h in history["items"]] == [
        ("prey", "sika deer", ANNA), ("blank", None, BORIS)]
    assert history["current"] == history["items"][-1] and history["machine"] == {"tag": "prey",
                                                                                  "species": "wild boar"}
    assert c.get(f"/api/detections/{deer}/verifications").json() == {
        "event_id": deer, "machine": {"tag": "prey", "species": "sika deer"}, "current": None, "items": []}

    items = {d["event_id"]: d for d in c.get("/api/detections").json()["items"]}
    assert {e: (d["verification"] or {}).get("tag") for e, d in items.items() if d["verification"]} == {
        leopard: "leopard", boar: "blank", failed: "other_animal"}
    assert items[boar]["verification"]["verified_by"] == BORIS
    assert (items[boar]["tag"], items[boar]["species"]) == ("prey", "wild boar")  # the machine's, as it was
    verified = c.get("/api/detections", verified="true").json()
    assert {d["event_id"] for d in verified["items"]} == {leopard, boar, failed} and verified["total"] == 3
    rest = c.get("/api/detections", verified="false").json()
    assert {d["event_id"] for d in rest["items"]} == set(night.ids()) - {leopard, boar, failed}
    assert rest["total"] == len(night.detections) - 3

    # stored beside the machine's classification, never over it; every change kept
    assert {e: machine_view(c, e) for e in before} == before
    assert stored_verifications(c) == 4
    assert c.get(f"/api/detections/{boar}").json()["item"]["verification"]["tag"] == "blank"


def test_only_a_named_token_may_verify(sqlite_collector):
    c = sqlite_collector
    event_id = c.night.detections[0]["event_id"]
    for token, status, words in ((None, 401, "researcher's token"), ("not-a-token-at-all-1234", 401, "not valid"),
                                 (TOKEN, 403, "NAME TOKEN")):
        r = verify(c, event_id, {"tag": "blank"}, token=token)
        assert r.status_code == status and words in r.json()["error"], (token, r.text)
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
    basic = c.client.post(f"/api/detections/{event_id}/verifications", content=b'{"tag":"blank"}',
                          headers={"Authorization": f"Basic {ANNA_TOKEN}", "Content-Type": "application/json"})
    assert basic.status_code == 401
    assert stored_verifications(c) == 0
    assert c.get("/api/whoami").json() == {"exact": False, "name": None, "can_verify": False}
    assert c.get("/api/whoami", token=TOKEN).json() == {"exact": True, "name": None, "can_verify": False}
    assert c.get("/api/whoami", token=ANNA_TOKEN).json() == {"exact": True, "name": ANNA, "can_verify": True}
    assert c.get("/api/whoami", token=ANNA_TOKEN + "x").status_code == 401
    # a name is revoked with its line, at once
    c.cfg.http.token_file.write_text(f"{TOKEN}\n")
    assert verify(c, event_id, {"tag": "blank"}).status_code == 401


BAD_BODIES = [
    (b'{"tag": "cat"}', "tag", "not a tag"),
    (b'{}', "tag", "missing"),
    (b'{"tag": 3}', "tag", "not a tag"),
    (b'{"tag": null}', "tag", "missing"),
    (b'{"tag": "blank", "species": "deer"}', "species", "names no species"),
    (b'{"tag": "unknown", "species": "deer"}', "species", "names no species"),
    (b'{"tag": "prey", "species": "../../etc/passwd"}', "species", "common name"),
    (b'{"tag": "prey", "species": ".hidden"}', "species", "common name"),
    (('{"tag": "prey", "species": "' + "deer" * 17 + '"}').encode(), "species", "longer than 64"),
    (b'{"tag": "prey", "species": 5}', "species", "string or null"),
    (b'{"tag": "prey", "species": "sika\\u0000deer"}', "species", "common name"),
    (b'{"tag": "prey", "species": "\\ud800"}', "species", "lone surrogate"),
    (b'{"tag": "prey", "specie": "deer"}', "specie", "unknown field"),
    (b'{"tag": "prey", "verified_by": "someone else"}', "verified_by", "unknown field"),
    (b'{"tag": "prey", "tag": "blank"}', "tag", "more than once"),
    (b'["prey"]', "(body)", "JSON object"),
    (b'prey', "(body)", "not JSON"),
    (b'{"tag": "prey", "species": NaN}', "(body)", "NaN"),
    (b'\xff\xfe', "(body)", "not UTF-8"),
    (b'', "(body)", "not JSON"),
]


def test_bad_verifications_get_a_400_naming_the_field_and_store_nothing(sqlite_collector):
    c = sqlite_collector
    event_id = c.night.detections[5]["event_id"]
    for body, field, words in BAD_BODIES:
        r = verify(c, event_id, body)
        assert r.status_code == 400, (body, r.text)
        answer = r.json()
        assert answer["field"] == field and answer["error"].startswith(f"{field}: ") and words in answer["error"], \
            (body, answer)
    r = c.client.post(f"/api/detections/{event_id}/verifications?tag=blank", content=b'{"tag": "blank"}',
                      headers={"Authorization": f"Bearer {ANNA_TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["parameter"] == "tag"
    # too big, declared or streamed without a length
    assert verify(c, event_id, b'{"tag": "prey", "species": "' + b"a" * 5000 + b'"}').status_code == 413
    streamed = verify(c, event_id, iter([b'{"tag": "prey", ', b'"x": "' + b"a" * 5000 + b'"}']))
    assert streamed.status_code == 413 and "at most 4096" in streamed.json()["error"]
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        r = verify(c, event_id, {"tag": "blank"}, content_type=kind)
        assert r.status_code == 415 and r.json()["error"].startswith("Content-Type"), kind
    assert verify(c, event_id, {"tag": "blank"}, content_type="application/json; charset=utf-8").status_code == 201
    unknown = "01a213df-4e48-7d7b-a40a-cf2e37baaf2c"
    assert verify(c, unknown, {"tag": "blank"}).status_code == 404
    assert c.get(f"/api/detections/{unknown}/verifications").status_code == 404
    put = c.client.put(f"/api/detections/{event_id}/verifications", headers={"Authorization": f"Bearer {ANNA_TOKEN}"})
    assert put.status_code == 405 and set(put.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert stored_verifications(c) == 1  # the one good body with a charset


def test_a_stored_row_that_breaks_the_rules_cannot_be_verified(sqlite_collector):
    c = sqlite_collector
    payload, text = next(iter(stored_hostile_detections("sqlite").values()))
    store_as_an_old_collector_did(c.db, payload, text)
    r = verify(c, payload["event_id"], {"tag": "blank"})
    assert r.status_code == 422 and r.json()["event_id"] == payload["event_id"]
    assert stored_verifications(c) == 0


def test_another_site_cannot_make_a_browser_verify(sqlite_collector):
    """The token travels in a header a page from elsewhere cannot set: no cookie is ever
    issued or read, no CORS header is ever sent, and the preflight such a request needs fails."""
    c = sqlite_collector
    event_id = c.night.detections[0]["event_id"]
    path = f"/api/detections/{event_id}/verifications"
    preflight = c.client.options(path, headers={"Origin": "https://evil.example", "Access-Control-Request-Method":
                                                "POST", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 405
    assert not any(h.startswith("access-control-") for h in preflight.headers)
    # a form post from another site: the browser sends its cookies, never the token
    form = c.client.post(path, content=b"tag=blank", headers={"Origin": "https://evil.example",
                                                              "Content-Type": "application/x-www-form-urlencoded",
                                                              "Cookie": f"token={ANNA_TOKEN}"})
    assert form.status_code == 401 and stored_verifications(c) == 0
    answers = [verify(c, event_id, {"tag": "leopard"}), c.get("/"), c.get("/api/whoami", token=ANNA_TOKEN),
               c.get(path, token=ANNA_TOKEN)]
    assert all("set-cookie" not in a.headers and not any(h.startswith("access-control-") for h in a.headers)
               for a in answers)
    assert "no-store" in answers[0].headers["cache-control"]


# -- field accuracy --------------------------------------------------------------------

def test_field_accuracy_counts_machine_against_verified_per_station_and_overall(collector):
    c, night = collector, collector.night
    # (index in the night, verified tag, species): what researchers found
    verdicts = [(0, "leopard", "leopard"), (1, "tiger", "amur tiger"), (2, "leopard", None), (3, "blank", None),
                (5, "prey", "sika deer"), (6, "prey", "sika deer"), (7, "other_animal", "badger")]
    for k, tag, species in verdicts:
        assert verify(c, night.detections[k]["event_id"], {"tag": tag, "species": species}).status_code == 201
    verify(c, night.detections[4]["event_id"], {"tag": "tiger"})
    verify(c, night.detections[4]["event_id"], {"tag": "leopard", "species": "leopard"},
           token=BORIS_TOKEN)  # the current one counts, not the first
    verdicts.append((4, "leopard", "leopard"))

    def expected(station: str | None) -> dict[str, Any]:
        matrix = [[0] * len(TAGS) for _ in TAGS]
        compared = agreed_species = 0
        for k, tag, species in verdicts:
            d = night.detections[k]
            if station not in (None, d["station_id"]):
                continue
            matrix[TAGS.index(d["tag"])][TAGS.index(tag)] += 1
            if d["tag"] == tag and species is not None:
                compared += 1
                agreed_species += species == (d["species"] or "").lower()
        return {"matrix": matrix, "species": {"compared": compared, "agreed": agreed_species}}

    body = c.get("/api/verifications/confusion").json()
    assert body["tags"] == list(TAGS) and (body["rows"], body["columns"]) == ("machine", "verified")
    overall = body["overall"]
    want = expected(None)
    assert overall["matrix"] == want["matrix"] and overall["species"] == want["species"]
    assert overall["verified"] == len(verdicts) == 8
    diagonal = sum(want["matrix"][i][i] for i in range(len(TAGS)))
    assert overall["agreed"] == diagonal and overall["accuracy"] == round(diagonal / 8, 4)
    leopard = next(t for t in overall["per_tag"] if t["tag"] == "leopard")
    said = sum(want["matrix"][TAGS.index("leopard")])
    truly = sum(row[TAGS.index("leopard")] for row in want["matrix"])
    hit = want["matrix"][TAGS.index("leopard")][TAGS.index("leopard")]
    assert (leopard["machine"], leopard["verified"]) == (said, truly)
    assert leopard["precision"] == round(hit / said, 4) and leopard["recall"] == round(hit / truly, 4)
    stations = {s["station_id"]: s for s in body["stations"]}
    assert set(stations) == set(PLACES)
    for station_id, block in stations.items():
        assert block["matrix"] == expected(station_id)["matrix"], station_id
    only = c.get("/api/verifications/confusion", station="bars-03").json()
    assert [s["station_id"] for s in only["stations"]] == ["bars-03"]
    assert only["overall"]["matrix"] == expected("bars-03")["matrix"]
    since = night.detections[5]["start"]
    late = c.get("/api/verifications/confusion", since=since).json()["overall"]
    assert late["verified"] == sum(1 for k, *_ in verdicts if night.detections[k]["start"] >= since)
    assert c.get("/api/verifications/confusion", station="x" * 300).status_code == 400


def test_field_accuracy_before_any_verification_is_empty_not_an_error(sqlite_collector):
    body = sqlite_collector.get("/api/verifications/confusion").json()
    assert body["overall"]["verified"] == 0 and body["overall"]["accuracy"] is None and body["stations"] == []


# -- location privacy -----------------------------------------------------------------------

def test_a_leopard_found_by_a_researcher_makes_its_station_sensitive(tmp_path):
    """scope = sensitive generalises stations that recorded a big cat: a verified one counts
    too, and a later correction never makes the station exact again."""
    with start_collector("sqlite:///collector.sqlite3", tmp_path, privacy={"scope": "sensitive"}) as c:
        with_verifiers(c)
        deer = c.night.ids(station_id="bars-03", tag="prey")[0]
        bars = lambda: next(s for s in c.get("/api/stations").json()["items"] if s["station_id"] == "bars-03")  # noqa: E731
        assert bars()["location_generalised"] is False
        assert verify(c, deer, {"tag": "leopard", "species": "leopard"}).status_code == 201
        assert bars()["location_generalised"] is True
        assert verify(c, deer, {"tag": "prey", "species": "sika deer"}).status_code == 201
        assert bars()["location_generalised"] is True
        exact = [v for pair in PLACES.values() for v in pair]
        for path in ("/api/verifications/confusion", f"/api/detections/{deer}/verifications", "/api/whoami",
                     "/api/detections?station=bars-03&verified=true", f"/api/detections/{deer}"):
            r = c.client.get(path)
            assert r.status_code == 200, path
            assert [n for n in numbers(r.json()) for v in exact if abs(n - v) < 0.005] == [], path
        created = verify(c, deer, {"tag": "prey"})
        assert [n for n in numbers(created.json()) for v in exact if abs(n - v) < 0.005] == []


# -- the token file ----------------------------------------------------------------------

def test_the_token_file_names_researchers_and_names_its_mistakes(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# partners\n{TOKEN}\n{ANNA} {ANNA_TOKEN}   # verifies\nанна.п {BORIS_TOKEN}\n")
    assert read_tokens(path) == ((None, TOKEN.encode()), (ANNA, ANNA_TOKEN.encode()),
                                 ("анна.п", BORIS_TOKEN.encode()))
    for line, words in ((f"anna petrova {ANNA_TOKEN}", "NAME TOKEN"), (f"anna/x {ANNA_TOKEN}", "the name"),
                        (f"_anna {ANNA_TOKEN}", "the name"), ("anna short", "at least 16"),
                        (f"{'a' * 65} {ANNA_TOKEN}", "the name")):
        path.write_text(f"{TOKEN}\n{line}\n")
        with pytest.raises(TokenFileError, match=f"line 2: .*{words}"):
            read_tokens(path)


def test_the_openapi_document_describes_the_write(sqlite_collector):
    doc = sqlite_collector.get("/api/openapi.json").json()
    post = doc["paths"]["/api/detections/{event_id}/verifications"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["tag"]["enum"] == list(TAGS) and schema["additionalProperties"] is False
    assert {"201", "400", "401", "403", "404", "413", "415", "422"} <= set(post["responses"])
    assert post["security"] == [{"bearer": []}]
    assert "verified" in {p["name"] for p in doc["paths"]["/api/detections"]["get"]["parameters"]}
    assert datetime.now(timezone.utc)  # the document is served without a token


def test_the_curl_example_in_the_docs_verifies_an_event(sqlite_collector, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    c = sqlite_collector
    doc = (Path(__file__).resolve().parents[1] / "docs" / "collector-api.md").read_text()
    block = doc.split("## Verifying events", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    command = block.replace("\\\n", " ").strip()
    assert command.startswith("curl ") and "POST" in command
    event_id = c.night.detections[5]["event_id"]
    env = {"PATH": os.environ["PATH"], "COLLECTOR": c.server.url, "TOKEN": ANNA_TOKEN, "EVENT_ID": event_id}
    run = subprocess.run(["bash", "-c", f"{command} -w '\\n%{{http_code}}'"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    body, _, code = run.stdout.rpartition("\n")
    assert (run.returncode, code) == (0, "201"), (run.stdout, run.stderr)
    assert json.loads(body)["item"]["verified_by"] == ANNA
    assert [(v["tag"], v["species"]) for v in c.db.verifications(event_id)] == [("prey", "sika deer")]


def test_every_species_the_taxonomy_emits_can_be_confirmed_as_it_is():
    """The dashboard's Confirm sends the machine's tag and species back: each must pass."""
    from station.classifier.taxonomy import load_taxonomy, regions
    from station.collector.verification import parse

    root = Path(__file__).resolve().parents[1]
    toml = root / "models" / "taxonomy_imagenet.toml"
    labels = (root / "models" / "imagenet_labels.txt").read_text(encoding="utf-8").splitlines()
    for region in regions(toml):
        taxonomy = load_taxonomy(toml, labels, region)
        for tag, species in set(zip(taxonomy.tags, taxonomy.species)):
            sent = None if tag == "blank" else species
            assert parse(json.dumps({"tag": tag, "species": sent}).encode()).species == (sent.lower() if sent
                                                                                         else None), \
                (region, tag, species)
