"""The web UI in real Chromium against a real server, fed by real agents.

One server, one browser, one organisation seeded with REST gateways that heartbeat and an OpAMP
WebSocket agent; each test opens a fresh browser context (its own cookies) and drives the pages
as a person does: roles, labels and visible text, never CSS classes. The fixtures (server,
browser, built UI, screenshots) and what they need are in conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import Org
from tests.support.server import LiveServer
from tests.ui.conftest import IN_CI, new_context, new_member, sign_in, wait_live
from tests.ui.fleet import Heartbeats, OpampAgentThread, unique

if not IN_CI:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Browser, Page, expect


@dataclass
class Fleet:
    org: Org
    token: str
    heartbeats: Heartbeats
    opamp: OpampAgentThread
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)

    def id_of(self, name: str) -> str:
        return str(self.gateways[name]["id"])


REST_FLEET = [
    # name, labels, version, heartbeats
    ("edge-eu-west-1", {"env": "prod", "region": "eu-west", "tier": "edge"}, "0.115.0", True),
    ("edge-eu-west-2", {"env": "prod", "region": "eu-west", "tier": "edge"}, "0.115.0", True),
    ("edge-us-east-1", {"env": "prod", "region": "us-east", "tier": "edge"}, "0.114.0", True),
    ("edge-us-east-2", {"env": "prod", "region": "us-east", "tier": "edge"}, "0.114.0", True),
    ("ingest-gw-1", {"env": "prod", "team": "platform"}, "0.115.0", True),
    ("ingest-gw-2", {"env": "staging", "team": "platform"}, "0.113.0", True),
    ("lab-gw-3", {"env": "dev"}, None, False),
]


@pytest.fixture(scope="module")
def fleet(ui_server: LiveServer, superuser: httpx.Client) -> Iterator[Fleet]:
    resp = superuser.post("/api/v1/orgs", json={"name": "acme-platform"})
    assert resp.status_code == 201, resp.text
    org = Org(server=ui_server, id=resp.json()["id"], name="acme-platform", admin=superuser)
    token = org.registration_token(name="fleet", max_uses=None)
    heartbeats = Heartbeats(org).start()
    opamp = OpampAgentThread(f"{ui_server.ws_url}/v1/opamp", token, name="collector-prod-eu")
    found = Fleet(org=org, token=token, heartbeats=heartbeats, opamp=opamp)
    # Tokens in every state for the tokens page: lab-gw-3 uses up a single-use one.
    single_use = org.registration_token(name="lab-bootstrap", max_uses=1)
    pilot = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "pilot-2025"}
    ).json()
    assert org.admin.delete(
        f"/api/v1/registration-tokens/{pilot['id']}", params={"org_id": org.id}
    ).is_success
    for i, (name, labels, version, beats) in enumerate(REST_FLEET):
        gw = org.register(
            token=single_use if name == "lab-gw-3" else token,
            name=name,
            instance_id=name,
            hostname=f"{name}.internal",
            ip_address=f"10.0.0.{i + 10}",
            labels=labels,
        )
        found.gateways[name] = gw
        if beats:
            body = {
                "version": version,
                "otel_version": "0.115.0",
                "metrics": {
                    "logs_processed": 120_000 * (i + 1),
                    "errors": i % 3,
                    "latency_ms": 4.5,
                },
            }
            heartbeats.add(gw, body)
    legacy = org.register(token=token, name="legacy-gw-1", instance_id="legacy-gw-1")
    assert org.admin.post(
        f"/api/v1/gateways/{legacy['id']}/deactivate", params={"org_id": org.id}
    ).is_success
    found.gateways["legacy-gw-1"] = legacy
    opamp.start()
    try:
        yield found
    finally:
        opamp.stop()
        heartbeats.stop()


def open_agents(page: Page, fleet: Fleet, query: str = "") -> None:
    page.goto(f"/orgs/{fleet.org.id}/agents{query}")
    expect(page.get_by_role("table", name="Agents")).to_be_visible()


def row(page: Page, name: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def member(fleet: Fleet, role: str) -> tuple[str, str, str]:
    return new_member(fleet.org, role)


# ---------------------------------------------------------------------------------------------


def test_sign_in_shows_the_fleet(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    open_agents(page, fleet)
    wait_live(page)
    for name in ("edge-eu-west-1", "ingest-gw-2", "collector-prod-eu", "legacy-gw-1"):
        expect(row(page, name)).to_be_visible()
    expect(row(page, "edge-eu-west-1")).to_contain_text("healthy")
    expect(row(page, "edge-eu-west-1")).to_contain_text("region=eu-west")
    expect(row(page, "collector-prod-eu")).to_contain_text("OpAMP WS")
    expect(row(page, "legacy-gw-1")).to_contain_text("offline")
    expect(row(page, "lab-gw-3")).to_contain_text("never")
    # The counts at the top are the server's summary.
    expect(page.get_by_role("button", name=re.compile(r"^9\s*All agents"))).to_be_visible()
    page.screenshot(path=shots / "agents.png")

    page.get_by_role("button", name="Switch to dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.screenshot(path=shots / "agents-dark.png")
    page.get_by_role("button", name="Switch to light theme").click()


def test_org_switcher_and_the_empty_state(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    open_agents(page, fleet)
    page.get_by_label("Organisation").select_option(label="default")
    expect(page).to_have_url(re.compile(r"/orgs/[0-9a-f-]+/agents$"))
    assert fleet.org.id not in page.url
    expect(page.get_by_role("heading", name="No agents yet")).to_be_visible()
    page.get_by_role("link", name="Create a registration token").click()
    expect(page.get_by_role("heading", name="Registration tokens", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="No registration tokens yet")).to_be_visible()


def test_a_new_agent_appears_live_and_turns_healthy(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    open_agents(page, fleet)
    wait_live(page)
    page.evaluate("window.__noReload = true")
    name = unique("edge-ap-south")
    gw = fleet.org.register(token=fleet.token, name=name, labels={"env": "prod"})
    expect(row(page, name)).to_be_visible(timeout=5_000)
    expect(row(page, name)).to_contain_text("registered")
    fleet.heartbeats.add(gw, {"version": "0.115.0"})
    expect(row(page, name)).to_contain_text("healthy", timeout=8_000)
    expect(row(page, name)).to_contain_text("active")
    assert page.evaluate("window.__noReload") is True, "the page reloaded"
    expect(page.get_by_role("button", name="Activity")).to_be_visible()
    page.get_by_role("button", name=re.compile("^Activity")).click()
    feed = page.get_by_role("list", name="Activity feed")
    expect(feed).to_contain_text(f"{name} registered")
    expect(feed).to_contain_text(f"{name} is healthy")
    page.keyboard.press("Escape")
    expect(feed).to_be_hidden()


def test_filter_by_health_and_search_by_name(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    open_agents(page, fleet)
    page.get_by_role("button", name=re.compile(r"Offline$")).click()
    expect(page).to_have_url(re.compile(r"health=offline"))
    expect(row(page, "legacy-gw-1")).to_be_visible()
    expect(row(page, "edge-eu-west-1")).to_have_count(0)

    page.get_by_role("button", name=re.compile(r"Offline$")).click()  # pressed again: all
    expect(row(page, "edge-eu-west-1")).to_be_visible()
    page.get_by_role("searchbox", name="Search by name").fill("us-east")
    expect(page).to_have_url(re.compile(r"name=us-east"))
    expect(row(page, "edge-us-east-1")).to_be_visible()
    expect(row(page, "edge-eu-west-1")).to_have_count(0)
    page.get_by_role("searchbox", name="Search by name").fill("no-such-agent")
    expect(page.get_by_text("No agents match these filters")).to_be_visible()


def test_label_selector_filters_and_explains_mistakes(page: Page, fleet: Fleet) -> None:
    spec = httpx.get(f"{fleet.org.server.url}/openapi.json").json()
    params = spec["paths"]["/api/v1/gateways"]["get"].get("parameters", [])
    if "selector" not in {p["name"] for p in params}:
        pytest.skip("this server has no label selectors (GET /api/v1/gateways?selector=) yet")
    sign_in(page)
    open_agents(page, fleet)
    box = page.get_by_role("textbox", name="Label selector")
    box.fill("region=eu-west")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"selector=region"))
    expect(row(page, "edge-eu-west-2")).to_be_visible()
    expect(row(page, "edge-us-east-1")).to_have_count(0)
    # The count endpoint answers a selector alone.
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text("of 2")
    # A label chip adds its requirement to the selector.
    row(page, "edge-eu-west-2").get_by_role("button", name=re.compile(r"^tier\s*=\s*edge$")).click()
    expect(box).to_have_value("region=eu-west, tier=edge")
    box.fill("region in (eu-west")
    box.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Invalid selector")
    expect(box).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(row(page, "edge-us-east-1")).to_be_visible()


def test_agent_details_config_copy_and_download(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    open_agents(page, fleet)
    # Keyboard: a focused row opens with Enter.
    row(page, "collector-prod-eu").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("collector-prod-eu"))).to_be_visible()
    expect(page.get_by_text("OpAMP WS · connected")).to_be_visible()

    traces = page.get_by_role("group", name="Pipeline traces")
    expect(traces.get_by_role("list", name="Receivers")).to_contain_text("otlp")
    expect(traces.get_by_role("list", name="Processors")).to_contain_text("memory_limiter")
    failing = traces.get_by_role("listitem").filter(has_text="otlp/backend")
    expect(failing).to_contain_text("unhealthy")
    expect(page.get_by_role("group", name="Pipeline metrics")).to_contain_text("hostmetrics")
    expect(page.get_by_text("connection refused: telemetry.example.com:4317").first).to_be_visible()

    # Desired (the base configuration) and effective (what the agent runs) differ: drift.
    expect(page.get_by_text("drift", exact=True)).to_be_visible()
    page.get_by_role("tab", name="Effective").click()
    expect(page.get_by_label("Effective configuration")).to_contain_text("hostmetrics")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "hostmetrics:" in copied
    assert copied.startswith("receivers:")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "collector-prod-eu-effective.yaml"
    assert Path(download.value.path()).read_text() == copied
    page.get_by_role("tab", name="Changes").click()
    changes = page.get_by_label("Changes from desired to effective")
    expect(changes).to_contain_text("added: hostmetrics:")
    expect(changes).to_contain_text("removed: exporters:")
    page.get_by_role("tab", name="Effective").click()
    expect(page.get_by_role("heading", name="Component health")).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 1560})
    page.screenshot(path=shots / "agent-details.png")


def test_create_a_token_see_it_once_then_revoke_it(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    page.goto(f"/orgs/{fleet.org.id}/tokens")
    page.get_by_role("button", name="Create token").click()
    dialog = page.get_by_role("dialog", name="Create a registration token")
    name = unique("eu-fleet")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Maximum uses").fill("5")
    dialog.get_by_role("button", name="Create token").click()

    shown = page.get_by_role("dialog", name=re.compile(f"Token .{name}. created"))
    token = shown.get_by_label("Registration token").inner_text().strip()
    assert len(token) > 40
    expect(shown).to_contain_text(f"-e REGISTRATION_TOKEN={token} flowgate-gateway")
    expect(shown).to_contain_text(f"BACKEND_URL={page.url.split('/orgs')[0]}")
    shown.get_by_role("tab", name="OpAMP supervisor").click()
    expect(shown).to_contain_text(f'Authorization: "Bearer {token}"')
    expect(shown).to_contain_text("/v1/opamp")
    shown.get_by_role("tab", name="Gateway image").click()
    page.screenshot(path=shots / "token-created.png")
    shown.get_by_role("button", name="Copy token").click()
    assert page.evaluate("navigator.clipboard.readText()") == token
    shown.get_by_role("button", name="I have copied it").click()
    expect(shown).to_be_hidden()
    assert token not in page.content(), "the token is shown only once"

    # It is a real token: a gateway enrols with it, and the list counts the use.
    gw = fleet.org.register(token=token, name=unique("enrolled"))
    fleet.gateways[gw["name"]] = gw
    tokens = page.get_by_role("table", name="Registration tokens")
    line = tokens.get_by_role("row").filter(has_text=name)
    page.reload()
    expect(line).to_contain_text("1 / 5")
    expect(line).to_contain_text("active")
    page.screenshot(path=shots / "tokens.png")

    line.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    expect(line).to_contain_text("revoked")
    refused = httpx.post(
        f"{fleet.org.server.url}/api/v1/gateways",
        json={"name": "late", "instance_id": unique("late")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 401


def test_bulk_set_labels_on_two_agents(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    open_agents(page, fleet)
    page.get_by_role("checkbox", name="Select edge-eu-west-1").check()
    page.get_by_role("checkbox", name="Select ingest-gw-1").check()
    bar = page.get_by_role("region", name="Bulk actions")
    expect(bar).to_contain_text("2 selected")
    bar.get_by_role("button", name="Set labels").click()
    dialog = page.get_by_role("dialog", name="Set labels on 2 agents")
    dialog.get_by_label("Labels").fill("rollout=wave-1, owner=sre")
    dialog.get_by_role("button", name="Apply labels").click()
    expect(dialog.get_by_role("status", name="Result")).to_have_text("2 updated, 0 failed")
    dialog.get_by_role("button", name="Done").click()
    expect(row(page, "edge-eu-west-1")).to_contain_text("owner=sre")
    for name, kept in (("edge-eu-west-1", "region"), ("ingest-gw-1", "team")):
        labels = fleet.org.get(f"/api/v1/gateways/{fleet.id_of(name)}").json()["labels"]
        assert labels["rollout"] == "wave-1"
        assert labels["owner"] == "sre"
        assert kept in labels, "existing labels are kept"
    untouched = fleet.org.get(f"/api/v1/gateways/{fleet.id_of('edge-eu-west-2')}").json()
    assert "rollout" not in untouched["labels"]


def test_bulk_deactivate_confirms_the_count(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    open_agents(page, fleet)
    page.get_by_role("checkbox", name="Select lab-gw-3").check()
    page.get_by_role("region", name="Bulk actions").get_by_role("button", name="Deactivate").click()
    dialog = page.get_by_role("dialog", name="Deactivate 1 agent?")
    dialog.get_by_role("button", name="Deactivate 1 agent").click()
    expect(dialog.get_by_role("status", name="Result")).to_have_text("1 deactivated, 0 failed")
    dialog.get_by_role("button", name="Done").click()
    expect(row(page, "lab-gw-3")).to_contain_text("inactive")
    assert fleet.org.get(f"/api/v1/gateways/{fleet.id_of('lab-gw-3')}").json()["status"] == (
        "inactive"
    )


def test_bulk_set_labels_on_all_matching_across_pages(page: Page, fleet: Fleet) -> None:
    batch = [
        fleet.org.register(token=fleet.token, name=f"zz-batch-{i:02d}", instance_id=unique("b"))
        for i in range(30)
    ]
    try:
        sign_in(page)
        open_agents(page, fleet, "?name=zz-batch&size=25")
        # Header + one page (the health chart's own hidden table is not the agents table).
        agents_table = page.get_by_role("table", name="Agents")
        expect(agents_table.get_by_role("row")).to_have_count(26)
        page.get_by_role("checkbox", name="Select all agents on this page").check()
        bar = page.get_by_role("region", name="Bulk actions")
        bar.get_by_role("button", name=re.compile("^Select all .*matching")).click()
        expect(bar).to_contain_text("matching agents selected")
        bar.get_by_role("button", name="Set labels").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Labels").fill("batch=yes")
        dialog.get_by_role("button", name="Apply labels").click()
        expect(dialog.get_by_role("status", name="Result")).to_have_text("30 updated, 0 failed")
        for gw in batch:
            labels = fleet.org.get(f"/api/v1/gateways/{gw['id']}").json()["labels"]
            assert labels == {"batch": "yes"}
    finally:
        for gw in batch:
            fleet.org.admin.delete(f"/api/v1/gateways/{gw['id']}", params={"org_id": fleet.org.id})


def test_deactivate_and_delete_from_details(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    open_agents(page, fleet)
    row(page, "edge-us-east-2").get_by_role("link").click()
    header = page.get_by_role("heading", name=re.compile("edge-us-east-2"))
    expect(header).to_contain_text("active")
    page.get_by_role("button", name="Deactivate").click()
    dialog = page.get_by_role("dialog", name="Deactivate edge-us-east-2?")
    dialog.get_by_role("button", name="Deactivate").click()
    expect(dialog).to_be_hidden()
    expect(header).to_contain_text("inactive")
    expect(header).to_contain_text("offline")
    expect(page.get_by_role("button", name="Deactivate")).to_have_count(0)
    fleet.heartbeats.discard(fleet.id_of("edge-us-east-2"))
    status = fleet.org.get(f"/api/v1/gateways/{fleet.id_of('edge-us-east-2')}").json()["status"]
    assert status == "inactive"

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete edge-us-east-2?").get_by_role(
        "button", name="Delete agent"
    ).click()
    expect(page).to_have_url(re.compile(r"/agents$"))
    expect(row(page, "edge-us-east-1")).to_be_visible()
    expect(row(page, "edge-us-east-2")).to_have_count(0)
    gone = fleet.org.get(f"/api/v1/gateways/{fleet.id_of('edge-us-east-2')}")
    assert gone.status_code == 404


def test_a_viewer_sees_no_write_controls(page: Page, fleet: Fleet) -> None:
    _, email, password = member(fleet, "viewer")
    sign_in(page, email, password)
    open_agents(page, fleet)
    expect(row(page, "edge-eu-west-1")).to_be_visible()
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("link", name="Add agents")).to_have_count(0)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Registration tokens")).to_have_count(0)
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    row(page, "edge-eu-west-1").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Labels")).to_be_visible()
    for action in ("Deactivate", "Delete", "Add label"):
        expect(page.get_by_role("button", name=action)).to_have_count(0)
    page.goto(f"/orgs/{fleet.org.id}/tokens")
    expect(page.get_by_text("Operators manage registration tokens")).to_be_visible()
    expect(page.get_by_role("button", name="Create token")).to_have_count(0)


def test_admin_manages_users_and_api_keys(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    page.goto(f"/orgs/{fleet.org.id}/admin")
    page.get_by_role("button", name="Invite user").click()
    dialog = page.get_by_role("dialog", name="Invite a user")
    email = f"{unique('alex')}@example.com"
    dialog.get_by_label("Email").fill(email)
    dialog.get_by_label(re.compile("Initial password")).fill("correct-horse-battery")
    dialog.get_by_label("Role").select_option("operator")
    dialog.get_by_role("button", name="Invite").click()
    users = page.get_by_role("table", name="Users")
    expect(users.get_by_role("row").filter(has_text=email)).to_be_visible()
    page.get_by_label(f"Role of {email}").select_option("viewer")
    expect(page.get_by_label(f"Role of {email}")).to_have_value("viewer")
    listed = {u["email"]: u["role"] for u in fleet.org.get("/api/v1/users").json()}
    assert listed[email] == "viewer"

    page.get_by_role("button", name="Create API key").click()
    dialog = page.get_by_role("dialog", name="Create an API key")
    dialog.get_by_label("Name").fill("ci-deploy")
    dialog.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("dialog", name=re.compile("API key .ci-deploy. created"))
    key = shown.get_by_label("API key").inner_text().strip()
    assert key.startswith("fgk_")
    assert httpx.get(
        f"{fleet.org.server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"}
    ).is_success
    shown.get_by_role("button", name="I have copied it").click()
    assert key not in page.content()
    page.screenshot(path=shots / "admin.png")
    keys = page.get_by_role("table", name="API keys")
    line = keys.get_by_role("row").filter(has_text="ci-deploy")
    line.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke key").click()
    expect(line).to_contain_text("revoked")


def test_polling_takes_over_when_the_event_stream_is_down(
    browser: Browser, ui_server: LiveServer, fleet: Fleet
) -> None:
    ctx = new_context(browser, ui_server)
    try:
        ctx.route("**/api/v1/events*", lambda route: route.abort())
        page = ctx.new_page()
        sign_in(page)
        open_agents(page, fleet)
        expect(page.get_by_role("status", name=re.compile("Polling every 8 s"))).to_be_visible()
        page.get_by_role("checkbox", name="Select edge-eu-west-2").check()
        name = unique("polled")
        fleet.org.register(token=fleet.token, name=name)
        expect(row(page, name)).to_be_visible(timeout=15_000)
        # The refetch kept the selection.
        expect(page.get_by_role("checkbox", name="Select edge-eu-west-2")).to_be_checked()
    finally:
        ctx.close()


def test_sign_out(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/sign-in"))
    page.goto(f"/orgs/{fleet.org.id}/agents")
    expect(page).to_have_url(re.compile("/sign-in"))
    expect(page.get_by_role("heading", name="Sign in to FlowGate")).to_be_visible()
    expect(page.get_by_text("Session expired")).to_have_count(0)


def test_an_expired_session_returns_to_sign_in_with_the_message(page: Page, fleet: Fleet) -> None:
    user_id, email, password = member(fleet, "operator")
    sign_in(page, email, password)
    open_agents(page, fleet)
    # A password change ends every session of that user (as if it had expired).
    resp = fleet.org.admin.post(
        f"/api/v1/users/{user_id}/password",
        params={"org_id": fleet.org.id},
        json={"new_password": "another-" + password},
    )
    assert resp.is_success, resp.text
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Registration tokens").click()
    expect(page).to_have_url(re.compile("/sign-in"))
    expect(page.get_by_role("status")).to_have_text("Session expired; sign in again")
    # Signing in again returns to the page the user was on.
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("another-" + password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/tokens$"))
