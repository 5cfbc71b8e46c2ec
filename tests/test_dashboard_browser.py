"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
served by the real HttpServer over a real SQLite database seeded with two nights at three
stations (``tests.test_collector_api.seed_night``). What the page shows is compared with
what was stored; the diel chart is read back from Chart.js itself.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from tests.test_collector_api import (PLACES, TOKEN, ZONE, Collector, sighting, start_collector,
                                      store_with_thumbnail, thumbnail_jpeg)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"no browser tests: Debian's chromium is not installed ({CHROMIUM}); "
                "scripts/bootstrap test installs it (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

CHART = """() => {
  const chart = Chart.getChart(document.getElementById('diel-chart'));
  return {labels: chart.data.labels,
          datasets: chart.data.datasets.map((d, i) => ({label: d.label, data: d.data,
                    heights: chart.getDatasetMeta(i).data.map(bar => Math.round(bar.height))}))};
}"""
THUMBNAILS_LOADED = """() => {
  const imgs = [...document.querySelectorAll('#detections img.thumb')];
  return imgs.length > 0 && imgs.every(img => img.complete && img.naturalWidth > 0);
}"""
THUMBNAILS = """() => [...document.querySelectorAll('#detections li.card')].map(card => {
  const img = card.querySelector('img.thumb');
  return [card.dataset.eventId, img ? [img.naturalWidth, img.naturalHeight, img.src.split(':')[0]] : null];
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


class Problems:
    """Everything the page complained about: console errors, script errors, failed requests."""

    def __init__(self, page: Any):
        self.items: list[str] = []
        page.on("console", lambda m: self.items.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.items.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: self.items.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.items.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)


def open_dashboard(browser: Any, c: Collector) -> tuple[Any, Problems]:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.set_default_timeout(10_000)
    problems = Problems(page)
    page.goto(f"{c.server.url}/?refresh=1")  # redraw every second instead of every 10
    return page, problems


def station_rows(page: Any) -> dict[str, dict[str, str]]:
    return page.eval_on_selector_all("#stations tbody tr", """rows => Object.fromEntries(rows.map(r => [
        r.dataset.station, {state: r.querySelector('.state .badge').textContent,
                            outbox: r.querySelector('.outbox').textContent,
                            disk: r.querySelector('.disk').textContent,
                            low: r.querySelector('.disk').classList.contains('low'),
                            location: r.cells[7].textContent}]))""")


def species_rows(page: Any) -> dict[str, int]:
    return {k: int(v) for k, v in page.eval_on_selector_all(
        "#species tbody tr", "rows => rows.map(r => [r.dataset.species, r.querySelector('.count').textContent])")}


def test_a_researcher_sees_the_night_and_a_new_leopard_appears(browser, tmp_path):
    with start_collector("sqlite:///collector.sqlite3", tmp_path) as c:
        night = c.night
        page, problems = open_dashboard(browser, c)
        page.wait_for_selector("body[data-refreshes]")

        # latest detections, newest first, each with its thumbnail actually decoded
        page.wait_for_function(THUMBNAILS_LOADED)
        shown = dict(page.evaluate(THUMBNAILS))
        assert list(shown) == night.ids()
        assert {k for k, v in shown.items() if v} == set(night.thumbnails)
        assert all(v == [160, 120, "http"] for v in shown.values() if v)

        # stations: online/offline, outbox depth, a nearly full disk, generalised locations
        rows = station_rows(page)
        assert {k: (v["state"], v["outbox"]) for k, v in rows.items()} == {
            "lazovsky-07": ("online", "7"), "kedrovaya-01": ("offline", "0"), "bars-03": ("online", "0")}
        assert rows["bars-03"]["disk"] == "350 MB" and rows["bars-03"]["low"] and not rows["lazovsky-07"]["low"]
        assert all("generalised" in r["location"] for r in rows.values())
        text = page.inner_text("body")
        assert not any(f"{v:.4f}" in text for pair in PLACES.values() for v in pair)  # no exact coordinate
        assert "public view" in page.inner_text("#view-badge")

        # species counts and the diel chart, read back from Chart.js
        diel = night.diel(ZONE)
        assert species_rows(page) == {s: sum(h) for s, h in diel.items()}
        chart = page.evaluate(CHART)
        assert chart["labels"] == [f"{h:02d}" for h in range(24)]
        assert {d["label"]: d["data"] for d in chart["datasets"]} == diel
        leopard = next(d for d in chart["datasets"] if d["label"] == "leopard")
        drawn = {h for h, height in enumerate(leopard["heights"]) if height > 0}
        assert drawn == {h for h, n in enumerate(diel["leopard"]) if n}  # bars drawn where counted
        assert all(h >= 20 or h < 6 for h in drawn)  # leopards are nocturnal
        page.select_option("#diel-species", "leopard")
        assert [d["label"] for d in page.evaluate(CHART)["datasets"]] == ["leopard"]

        # a new leopard arrives at lazovsky-07: it shows up on the next refresh, picture and all
        new = sighting(0, 0, 1, "lazovsky-07", "leopard", "leopard", datetime.now(ZoneInfo(ZONE)))  # 00:01 today
        store_with_thumbnail(c.db, c.cfg.collector.thumbnails_dir, new, night, thumbnail_jpeg("leopard", 3))
        page.wait_for_selector(f'#detections li[data-event-id="{new["event_id"]}"] img.thumb')
        page.wait_for_function(THUMBNAILS_LOADED)
        assert list(dict(page.evaluate(THUMBNAILS))) == night.ids()
        page.wait_for_function("() => document.querySelector('#species tr[data-species=\"leopard\"] .count')"
                               f".textContent === '{sum(night.diel(ZONE)['leopard'])}'")
        assert [sum(d["data"]) for d in page.evaluate(CHART)["datasets"]] == [sum(night.diel(ZONE)["leopard"])]
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert problems.items == []
        page.close()


def test_a_private_collector_asks_for_a_token_and_then_shows_exact_locations(browser, tmp_path):
    with start_collector("sqlite:///collector.sqlite3", tmp_path, http={"public": False}) as c:
        page, problems = open_dashboard(browser, c)
        page.wait_for_selector("#problem:not([hidden])")
        assert "needs an access token" in page.inner_text("#problem")
        assert page.locator("#stations tbody tr").count() == 0

        page.fill("#token", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#stations tbody tr")
        page.wait_for_function(THUMBNAILS_LOADED)
        rows = station_rows(page)
        for station_id, (lat, lon) in PLACES.items():
            assert f"{lat:.4f}, {lon:.4f}" in rows[station_id]["location"] and "exact" in rows[station_id]["location"]
        shown = dict(page.evaluate(THUMBNAILS))
        assert all(v[2] == "blob" and v[0] == 160 for v in shown.values() if v)  # fetched with the token
        assert "restricted view" in page.inner_text("#view-badge")

        page.reload()  # the token is kept for this tab (sessionStorage), not typed again
        page.wait_for_selector("#stations tbody tr")
        assert page.evaluate("() => sessionStorage.getItem('camtrap-collector-token')") == TOKEN
        page.click("#forget-token")
        page.wait_for_selector("#problem:not([hidden])")
        assert page.evaluate("() => sessionStorage.getItem('camtrap-collector-token')") is None
        assert [p for p in problems.items if "HTTP 401" not in p and "401 (Unauthorized)" not in p] == []
        page.close()


def test_the_page_loads_nothing_from_outside(browser, tmp_path):
    """Chart.js is vendored: every request the page makes goes to the collector itself."""
    with start_collector("sqlite:///collector.sqlite3", tmp_path) as c:
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{c.server.url}/")
        page.wait_for_selector("body[data-refreshes]")
        assert requests and all(u.startswith(c.server.url) for u in requests if not u.startswith("blob:")), requests
        assert page.evaluate("() => typeof Chart.getChart === 'function' && Chart.version") == \
            (Path(__file__).resolve().parents[1] / "station/collector/web/static/vendor/PROVENANCE"
             ).read_text().split("chart.js ")[1].split()[0]
        page.close()



# -- verifying and field accuracy --------------------------------------------------------

MATRIX = """() => Object.fromEntries([...document.querySelectorAll('#confusion tbody tr')].map(row => [
  row.dataset.machine, Object.fromEntries([...row.querySelectorAll('td')].map(td => [td.dataset.verified,
                                                                                     Number(td.textContent)]))]))"""


def card(event_id: str) -> str:
    return f'#detections li[data-event-id="{event_id}"]'


def test_a_researcher_verifies_events_and_sees_how_far_to_trust_the_tags(browser, tmp_path):
    from tests.test_collector_verification import ANNA, ANNA_TOKEN, with_verifiers

    with start_collector("sqlite:///collector.sqlite3", tmp_path) as c:
        with_verifiers(c)
        night = c.night
        leopard, tiger, boar, deer = (night.detections[k]["event_id"] for k in (0, 1, 5, 6))
        page, problems = open_dashboard(browser, c)
        page.wait_for_selector("body[data-refreshes]")
        # the public view: nothing to press, nothing verified yet
        assert page.locator("#detections .actions").count() == 0
        assert page.locator("#detections .verification.none").count() == len(night.detections)
        assert page.is_visible("#confusion-empty")

        page.fill("#token", ANNA_TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_function("() => document.querySelector('#verify-hint').textContent.includes('Verifying as')")
        assert ANNA in page.inner_text("#verify-hint")
        page.wait_for_selector(f"{card(leopard)} button.confirm")

        page.click(f"{card(leopard)} button.confirm")                   # the machine was right
        page.wait_for_selector(f'{card(leopard)}[data-verified="leopard"]')
        page.click(f"{card(boar)} button.correct-open")                 # it was a sika deer
        page.select_option(f"{card(boar)} select.verify-tag", "prey")
        page.fill(f"{card(boar)} input.verify-species", "Sika deer")
        page.click(f"{card(boar)} button.save")
        page.wait_for_selector(f'{card(boar)}[data-verified="prey"]')
        page.click(f"{card(tiger)} button.blank")                       # only grass moving
        page.wait_for_selector(f'{card(tiger)}[data-verified="blank"]')
        assert "corrected: prey · sika deer" in page.inner_text(f"{card(boar)} .verification")
        assert "confirmed: leopard" in page.inner_text(f"{card(leopard)} .verification")

        stored = {e: [(v["tag"], v["species"], v["verified_by"]) for v in c.db.verifications(e)]
                  for e in (leopard, tiger, boar)}
        assert stored == {leopard: [("leopard", "leopard", ANNA)], tiger: [("blank", None, ANNA)],
                          boar: [("prey", "sika deer", ANNA)]}
        assert (c.db.detection(boar)["tag"], c.db.detection(boar)["species"]) == ("prey", "wild boar")

        # the confusion panel shows what the API counts: 2 of 3 tags right, 1 of 2 species
        page.wait_for_function("() => document.querySelector('#confusion-summary').textContent.includes('of 3')")
        api = c.get("/api/verifications/confusion").json()
        tags = api["tags"]
        shown = page.evaluate(MATRIX)
        assert {m: {v: n for v, n in row.items() if n} for m, row in shown.items() if any(row.values())} == {
            tags[i]: {tags[j]: n for j, n in enumerate(row) if n}
            for i, row in enumerate(api["overall"]["matrix"]) if any(row)}
        # a square of the tags that occur on either side
        assert list(shown) == ["leopard", "tiger", "prey", "blank"]
        assert shown["tiger"] == {"leopard": 0, "tiger": 0, "prey": 0, "blank": 1}
        assert shown["prey"]["prey"] == shown["leopard"]["leopard"] == 1 and not any(shown["blank"].values())
        assert page.inner_text("#confusion-summary") == ("Machine tag right on 2 of 3 verified events (67 %) · "
                                                         "species right on 1 of 2 (50 %)")
        stations = dict(page.eval_on_selector_all("#confusion-stations tbody tr",
                                                  "rows => rows.map(r => [r.dataset.station, "
                                                  "r.querySelector('.accuracy').textContent])"))
        assert stations == {"lazovsky-07": "2 (100 %)", "kedrovaya-01": "0 (0 %)"}
        page.select_option("#confusion-station", "kedrovaya-01")
        assert page.inner_text("#confusion-summary") == "Machine tag right on 0 of 1 verified events (0 %)"

        # the machine's blank kept the label it saw as its species: confirming it names none
        valley = sighting(0, 0, 5, "bars-03", "blank", "valley", datetime.now(ZoneInfo(ZONE)))
        store_with_thumbnail(c.db, c.cfg.collector.thumbnails_dir, valley, night, thumbnail_jpeg(None, 1))
        page.click(f"{card(valley['event_id'])} button.confirm")
        page.wait_for_selector(f'{card(valley["event_id"])}[data-verified="blank"]')
        assert [(v["tag"], v["species"]) for v in c.db.verifications(valley["event_id"])] == [("blank", None)]
        page.select_option("#confusion-station", "")
        page.wait_for_function("() => document.querySelector('#confusion-summary').textContent.includes('3 of 4')")

        # a correction being typed survives the page's refreshes
        page.click(f"{card(deer)} button.correct-open")
        page.fill(f"{card(deer)} input.verify-species", "roe deer")
        refreshes = int(page.get_attribute("body", "data-refreshes"))
        page.wait_for_function(f"() => Number(document.body.dataset.refreshes) >= {refreshes + 2}")
        assert page.input_value(f"{card(deer)} input.verify-species") == "roe deer"
        page.click(f"{card(deer)} button.cancel")

        # what is still to do
        page.select_option("#filter-verified", "false")
        page.wait_for_function(f"() => !document.querySelector('{card(leopard)}')")
        left = [e for e, _ in page.evaluate(THUMBNAILS)]
        assert left == [e for e in night.ids() if e not in (leopard, tiger, boar, valley["event_id"])]
        assert problems.items == []
        page.screenshot(path=str(tmp_path / "verify.png"), full_page=True)
        page.close()


def test_a_token_without_a_name_reads_but_offers_no_verifying(browser, tmp_path):
    with start_collector("sqlite:///collector.sqlite3", tmp_path) as c:
        page, problems = open_dashboard(browser, c)
        page.fill("#token", TOKEN)
        page.click("#token-form button[type=submit]")
        page.wait_for_function("() => document.querySelector('#verify-hint').textContent.includes('may not verify')")
        page.wait_for_function("() => document.querySelector('#view-badge').textContent.includes('restricted')")
        assert page.locator("#detections .actions").count() == 0
        assert problems.items == []
        page.close()
