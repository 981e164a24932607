"""Serving the built web UI at ``/`` (a single-page app: one ``index.html`` and its assets).

Contract, for GET and HEAD of every path that no server endpoint owns
(:func:`flowgate.core.paths.is_server_path`: the API, OpAMP, ops endpoints and API docs):

- ``/assets/<file>``: the file, ``Cache-Control: public, max-age=31536000, immutable`` (the build
  puts a content hash in every asset's name, so a name never changes meaning). A missing asset is
  a JSON 404: never ``index.html`` under a year-long cache.
- any other file of the build (``/favicon.ico``, ``/index.html``): the file, ``no-cache``.
- anything else: ``index.html`` with ``Cache-Control: no-cache``, so a deep link
  (``/agents/<id>``) works on reload and a new release is picked up at once; the app's own router
  then shows the page.
- no built UI (no ``index.html``): a small HTML page saying how to build it, status 200.

Other methods on those paths, and every path a server endpoint owns, never reach the UI: they get
the application's JSON answers (an unknown ``/api/...`` path stays the JSON 404). The directory is
read on every request, so a UI built while the server runs is served without a restart.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from flowgate.core.paths import is_server_path

#: Where the frontend build writes (package data).
DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FlowGate</title></head>
<body><h1>FlowGate</h1>
<p>UI not built: install Node 20 and run make run again.</p>
<p>The API is up: see <a href="/docs">/docs</a>.</p>
</body></html>
"""


class UIRoute(BaseRoute):
    """The catch-all route of the UI; appended after every other route."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files = StaticFiles(directory=directory, check_dir=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not is_server_path(scope["path"])
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._response(scope)
        await response(scope, receive, send)

    async def _response(self, scope: Scope) -> Response:
        path: str = scope["path"]
        if path.startswith("/assets/"):
            asset = await self._file(path, scope)
            if asset is None:
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            asset.headers["cache-control"] = IMMUTABLE
            return asset
        found = None if path.endswith("/") else await self._file(path, scope)
        page = found or await self._file("/index.html", scope)
        if page is None:
            page = HTMLResponse(NOT_BUILT_PAGE)
        page.headers["cache-control"] = REVALIDATE
        return page

    async def _file(self, path: str, scope: Scope) -> Response | None:
        """The build's file at URL path ``path`` (or a 304 for it), None when there is none."""
        relative = posixpath.normpath(path.lstrip("/") or ".")
        try:
            return await self._files.get_response(relative, scope)
        except HTTPException as exc:
            if exc.status_code in (401, 404):  # missing, or not readable by the server
                return None
            raise


def mount_ui(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the UI from ``directory`` (default: the package's ``static``) for every path the
    routes added before this one do not own. Call it after every other route."""
    app.router.routes.append(UIRoute(directory or DEFAULT_DIRECTORY))
