"""The collector's read-only HTTP side: a JSON API and the researchers' dashboard.

    app = create_app(cfg, stats=ingest.stats)       # Starlette (ASGI) app
    server = HttpServer(app, host="127.0.0.1", port=0)
    server.start(); server.port; server.stop()

``app.py`` routes and handlers, ``params.py`` query parameters, ``auth.py`` bearer
tokens, ``views.py`` what a row shows (location privacy), ``databases.py`` connections
per request, ``server.py`` uvicorn on a thread, ``static/`` the dashboard (HTML, JS, CSS,
vendored Chart.js). See docs/collector-api.md.
"""

from station.collector.web.app import create_app
from station.collector.web.server import HttpServer, HttpServerError

__all__ = ["HttpServer", "HttpServerError", "create_app"]
