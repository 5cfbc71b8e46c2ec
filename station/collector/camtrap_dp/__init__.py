"""Camtrap DP 1.0.2: the profile and table schemas this collector exports against, and an
offline validator.

A package names the official profile and table schemas by URL (as Camtrap DP asks), and
``frictionless validate datapackage.json`` fetches them from there. The collector often
runs where there is no internet, so :func:`validate` runs the same frictionless
validation with every one of those URLs answered from the files beside this module, and
any other URL refused: nothing is fetched.

No package registry carries the official files, so these were written from the published
specification (field names, types, required fields, ranges, vocabularies, keys); see
PROVENANCE.md. They are no substitute for a final check against the official files.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_URLS = {name: f"{BASE_URL}/{name}-table-schema.json" for name in TABLES}

HERE = Path(__file__).resolve().parent
LOCAL_FILES = {PROFILE_URL: HERE / "camtrap-dp-profile.json",
               **{url: HERE / f"{name}-table-schema.json" for name, url in SCHEMA_URLS.items()}}


class OfflineError(ConnectionError):
    """Validation asked for a URL that has no local copy (and nothing is fetched)."""


def _offline_session() -> Any:
    """A requests session that answers the Camtrap DP URLs from LOCAL_FILES and refuses the rest."""
    import requests
    from requests.adapters import BaseAdapter
    from urllib3.response import HTTPResponse

    class LocalFiles(BaseAdapter):
        def send(self, request, **kwargs):  # type: ignore[override]
            url = request.url.split("#", 1)[0]
            path = LOCAL_FILES.get(url)
            if path is None:
                raise OfflineError(f"{url}: not fetched (offline validation knows only the Camtrap DP "
                                   f"{VERSION} profile and table schemas)")
            body = path.read_bytes()
            response = requests.Response()
            response.status_code, response.url, response.request = 200, url, request
            response.headers["Content-Type"] = "application/json"
            response.raw = HTTPResponse(body=io.BytesIO(body), preload_content=False, status=200,
                                        headers={"Content-Length": str(len(body))})
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("http://", LocalFiles())
    session.mount("https://", LocalFiles())
    return session


def validate(datapackage: str | Path) -> Any:
    """Validate a package (its datapackage.json) with frictionless, offline: the descriptor
    against the Camtrap DP profile, every table against its table schema, primary and
    foreign keys. Returns the frictionless Report (``report.valid``, ``report.flatten()``)."""
    import frictionless

    with frictionless.system.use_context(http_session=_offline_session()):
        return frictionless.validate(str(datapackage), type="package")


def problems(report: Any, limit: int = 20) -> list[str]:
    """The errors of a frictionless Report as sentences: 'observations.csv row 4, observationType: ...'."""
    out: list[str] = []
    for error in report.errors:
        out.append(error.message)
    for task in report.tasks:
        where = Path(task.place or task.name).name
        for error in task.errors:
            row = getattr(error, "row_number", None)
            field = getattr(error, "field_name", None)
            place = ", ".join(x for x in (f"row {row}" if row else "", field or "") if x)
            out.append(f"{where}{' ' + place if place else ''}: {error.message}")
    return out[:limit]
