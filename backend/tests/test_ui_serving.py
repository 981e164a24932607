"""The web UI at ``/``: the build's files, index.html for deep links, never over the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.server import LiveServer

UI_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
INDEX = "<!doctype html><title>FlowGate test build</title><div id=root></div>"
ASSET = "console.log('hashed asset');"
DEEP_LINKS = ("/", "/agents/x", "/orgs/some-org/agents", "/agents/", "/settings?tab=keys")


def test_the_built_ui_is_served_with_deep_links_and_caching(
    make_server: Any, tmp_path: Path
) -> None:
    ui = tmp_path / "ui"
    (ui / "assets").mkdir(parents=True)
    (ui / "index.html").write_text(INDEX)
    (ui / "assets" / "index-3f2a9c.js").write_text(ASSET)
    (ui / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("outside the UI directory")
    live: LiveServer = make_server(FLOWGATE_UI_DIR=str(ui))
    http = httpx.Client(base_url=live.url, timeout=15)

    for path in DEEP_LINKS:
        resp = http.get(path)
        assert resp.status_code == 200, path
        assert resp.text == INDEX, path
        assert resp.headers["content-type"].startswith("text/html"), path
        assert resp.headers["cache-control"] == "no-cache", path
        assert resp.headers["content-security-policy"] == UI_CSP, path
        assert resp.headers["x-frame-options"] == "DENY", path
    assert http.head("/agents/x").status_code == 200
    etag = http.get("/").headers["etag"]
    assert http.get("/", headers={"If-None-Match": etag}).status_code == 304

    asset = http.get("/assets/index-3f2a9c.js")
    assert asset.status_code == 200 and asset.text == ASSET
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    icon = http.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    # A missing asset is a 404, never index.html under a year-long cache.
    missing = http.get("/assets/index-000000.js")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert "immutable" not in missing.headers.get("cache-control", "")
    for path in ("/assets/../../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt", "/../secret.txt"):
        resp = http.get(path)
        assert "outside the UI directory" not in resp.text, path

    # What the server answers itself is never shadowed.
    resp = http.get("/api/v1/nope")
    assert (resp.status_code, resp.json()) == (404, {"detail": "Not Found"})
    assert resp.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    resp = http.put("/api/v1/gateways")  # a known path, another method: still 405
    assert resp.status_code == 405
    resp = http.get("/api/v1/auth/me")
    assert (resp.status_code, resp.json()) == (401, {"detail": "Not authenticated"})
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json()["status"] == "ok"
    assert http.get("/openapi.json").json()["info"]["title"] == "FlowGate"
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert http.get("/redoc").status_code == 200
    assert "flowgate_" in http.get("/metrics").text
    for path in ("/docs/nope", "/metrics/x", "/v1/opamp/x"):
        assert http.get(path).status_code == 404, path
        assert INDEX not in http.get(path).text, path
    # Methods other than GET and HEAD are not the UI's: the API's JSON answer, as before.
    resp = http.post("/agents/x")
    assert resp.status_code in (404, 405) and "detail" in resp.json()


def test_without_a_build_every_page_says_how_to_get_one(make_server: Any, tmp_path: Path) -> None:
    ui = tmp_path / "empty"
    ui.mkdir()
    live: LiveServer = make_server(FLOWGATE_UI_DIR=str(ui))
    http = httpx.Client(base_url=live.url, timeout=15)
    for path in DEEP_LINKS:
        resp = http.get(path)
        assert resp.status_code == 200, path
        assert "UI not built: install Node 20 and run make run again" in resp.text, path
        assert resp.headers["content-type"].startswith("text/html"), path
        assert resp.headers["cache-control"] == "no-cache", path
    assert http.get("/api/v1/nope").status_code == 404
    assert http.get("/healthz").json() == {"status": "ok"}

    # A build made while the server runs is served at once.
    (ui / "index.html").write_text(INDEX)
    assert http.get("/agents/x").text == INDEX
