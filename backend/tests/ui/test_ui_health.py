"""Health history in the browser: the fleet chart on the agents page and an agent's timeline.

A small organisation of its own: REST gateways register (history: ``registered``, from null)
and heartbeat (``connected``: unhealthy -> healthy), one stays silent. The history the pages
show is first read from the API, so the test checks the UI against what the server recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import Org
from tests.support.server import LiveServer
from tests.ui.conftest import IN_CI, sign_in
from tests.ui.fleet import Heartbeats

if not IN_CI:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect


@pytest.fixture(scope="module")
def health_org(
    ui_server: LiveServer, superuser: httpx.Client
) -> Iterator[tuple[Org, dict[str, Any]]]:
    resp = superuser.post("/api/v1/orgs", json={"name": "health-history"})
    assert resp.status_code == 201, resp.text
    org = Org(server=ui_server, id=resp.json()["id"], name="health-history", admin=superuser)
    token = org.registration_token(name="fleet", max_uses=None)
    heartbeats = Heartbeats(org).start()
    gateways: dict[str, Any] = {}
    for name in ("hist-gw-1", "hist-gw-2", "hist-silent"):
        gw = org.register(token=token, name=name, instance_id=name)
        gateways[name] = gw
        if name != "hist-silent":
            heartbeats.add(gw, {"version": "0.115.0", "otel_version": "0.115.0"})
    try:
        yield org, gateways
    finally:
        heartbeats.stop()


def _history(org: Org, gateway_id: str) -> list[dict[str, Any]]:
    resp = org.admin.get(f"/api/v1/gateways/{gateway_id}/health/history", params={"org_id": org.id})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def test_health_chart_and_agent_timeline(
    page: Page, health_org: tuple[Org, dict[str, Any]], shots: Path
) -> None:
    org, gateways = health_org
    gw = gateways["hist-gw-1"]
    # What the server recorded for a fresh gateway that heartbeats: registered, then healthy.
    deadline = time.monotonic() + 15
    items = _history(org, gw["id"])
    while not any(t["to"] == "healthy" for t in items) and time.monotonic() < deadline:
        time.sleep(0.5)
        items = _history(org, gw["id"])
    assert items[0]["reason"] == "registered" and items[0]["from"] is None, items
    assert items[-1]["to"] == "healthy", items  # the newest, which the list must show first
    # The fleet series ends with the maintained counts, folded in by the health sweep (5 s).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        points = org.admin.get("/api/v1/fleet/health-history", params={"org_id": org.id}).json()[
            "points"
        ]
        if points and points[-1]["healthy"] == 2:
            break
        time.sleep(0.5)

    sign_in(page)
    page.goto(f"/orgs/{org.id}/agents")
    expect(page.get_by_role("table", name="Agents")).to_be_visible()
    chart = page.get_by_role(
        "img", name=re.compile(r"^Agent health now: 2 healthy, .*\(last 24 h\)$")
    )
    expect(chart).to_be_visible()
    # The range toggle asks for the last hour; the label says so.
    page.get_by_role("group", name="Time range").get_by_role("button", name="1 h").click()
    expect(
        page.get_by_role("img", name=re.compile(r"^Agent health now: 2 healthy, .*\(last 1 h\)$"))
    ).to_be_visible()
    box = page.get_by_role("region", name=re.compile("Health over the last")).bounding_box()
    assert box is not None and box["height"] <= 140, box
    page.screenshot(path=str(shots / "agents-health-chart.png"), full_page=False)

    page.get_by_role("link", name="hist-gw-1", exact=True).click()
    card = page.get_by_role("region", name="Health history")
    expect(card).to_be_visible()
    transitions = card.get_by_role("list", name="Health transitions, newest first").get_by_role(
        "listitem"
    )
    expect(transitions).to_have_count(len(items))
    # Newest first: the last recorded transition heads the list, the registration ends it.
    newest = transitions.first
    expect(newest).to_contain_text(re.compile(r"→\s*healthy"))
    expect(transitions.last).to_contain_text("registered")
    expect(transitions.last).to_contain_text("new")
    expect(card.get_by_role("img", name=re.compile(r"^Last 24 hours: .*healthy"))).to_be_visible()
    # The whole history is loaded (it starts at the creation): there is nothing older to ask for.
    expect(card.get_by_role("button", name="Older")).to_have_count(0)
    card.screenshot(path=str(shots / "agent-health-history.png"))
