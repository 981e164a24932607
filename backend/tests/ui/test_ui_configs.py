"""The configuration pages in real Chromium: templates, the editor that marks the server's
validation errors at their line, the side-by-side diff, deployments and their live progress.

The fleet is real OpAMP WebSocket agents (tests/ui/fleet.py) that apply what they are sent and
report APPLYING then APPLIED, and a canary that reports FAILED with the collector's error for a
configuration it cannot load. The tests run in order and build on each other (one template,
versions 1-3). Fixtures are in conftest.py.
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
from tests.support.polling import wait_for
from tests.support.server import LiveServer
from tests.ui.conftest import IN_CI, new_member, sign_in
from tests.ui.fleet import APPLY_ERROR, ApplyingAgentThread, Heartbeats

if not IN_CI:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

TEMPLATE = "edge-pipeline"

#: Version 1 as first typed: the pipeline names a processor that is not defined (line 15).
WITH_ERROR = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
processors:
  batch:
    timeout: 5s
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, memory_limiter]
      exporters: [debug]
"""
ERROR_LINE = 15
V1 = WITH_ERROR.replace("[batch, memory_limiter]", "[batch]")
V2 = V1.replace("  debug: {}\n", "  debug:\n    verbosity: basic\n").replace(
    "      exporters: [debug]\n",
    "      exporters: [debug]\n    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n",
)
#: Valid for FlowGate (it does not check a component's settings), refused by the collector.
V3_BAD = V2.replace("verbosity: basic", "verbosity: loud")

FLEET = [
    # name, labels, fails on
    ("otel-eu-1", {"env": "prod", "region": "eu"}, None),
    ("otel-eu-2", {"env": "prod", "region": "eu"}, None),
    ("otel-canary-1", {"env": "prod", "region": "eu", "ring": "canary"}, "verbosity: loud"),
]


@dataclass
class Fleet:
    org: Org
    agents: dict[str, ApplyingAgentThread]
    ids: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def fleet(ui_server: LiveServer, superuser: httpx.Client) -> Iterator[Fleet]:
    resp = superuser.post("/api/v1/orgs", json={"name": "acme-configs"})
    assert resp.status_code == 201, resp.text
    org = Org(server=ui_server, id=resp.json()["id"], name="acme-configs", admin=superuser)
    token = org.registration_token(name="collectors", max_uses=None)
    agents: dict[str, ApplyingAgentThread] = {}
    ids: dict[str, str] = {}
    heartbeats = Heartbeats(org).start()
    try:
        for name, labels, fail_on in FLEET:
            agent = ApplyingAgentThread(f"{ui_server.ws_url}/v1/opamp", token, name, fail_on)
            agents[name] = agent.start()
            found = wait_for(
                lambda name=name: org.get("/api/v1/gateways", name=name).json()["items"],
                timeout=10,
            )
            ids[name] = found[0]["id"]
            resp = org.admin.patch(
                f"/api/v1/gateways/{ids[name]}", params={"org_id": org.id}, json={"labels": labels}
            )
            assert resp.status_code == 200, resp.text
        # A staging gateway the selectors below must not pick.
        staging = org.register(token=token, name="rest-staging-1", labels={"env": "staging"})
        heartbeats.add(staging, {"version": "0.115.0"})
        ids["rest-staging-1"] = staging["id"]
        yield Fleet(org=org, agents=agents, ids=ids)
    finally:
        for agent in agents.values():
            agent.stop()
        heartbeats.stop()


def editor(page: Page) -> Any:
    return page.get_by_role("textbox", name=f"Configuration of {TEMPLATE}")


def replace_text(page: Page, text: str) -> None:
    """Types over the editor's whole text (as a paste: CodeMirror does not re-indent it)."""
    editor(page).click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(text)


def open_template(page: Page, fleet: Fleet) -> None:
    page.goto(f"/orgs/{fleet.org.id}/configs/{fleet.state['config_id']}")
    expect(page.get_by_role("heading", name=TEMPLATE, exact=True)).to_be_visible()


def deployment_rows(page: Page) -> Any:
    return page.get_by_role("table", name="Rollout progress").get_by_role("row")


def agent_row(page: Page, name: str) -> Any:
    return deployment_rows(page).filter(has=page.get_by_role("link", name=name, exact=True))


# ---------------------------------------------------------------------------------------------


def test_create_a_template_and_see_an_error_marked_at_its_line(
    page: Page, fleet: Fleet, shots: Path
) -> None:
    sign_in(page)
    page.goto(f"/orgs/{fleet.org.id}/agents")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Configurations").click()
    expect(page.get_by_role("heading", name="No configuration templates yet")).to_be_visible()
    page.get_by_role("button", name="Create a template").click()
    dialog = page.get_by_role("dialog", name="Create a configuration template")
    dialog.get_by_label("Name").fill(TEMPLATE)
    dialog.get_by_label("Description (optional)").fill("OTLP in, batch, debug out")
    dialog.get_by_role("button", name="Create template").click()
    expect(page.get_by_role("heading", name=TEMPLATE, exact=True)).to_be_visible()
    fleet.state["config_id"] = page.url.rstrip("/").split("/")[-1]
    expect(page.get_by_role("heading", name="No versions yet")).to_be_visible()

    page.get_by_role("link", name="New version").first.click()
    expect(page.get_by_role("heading", name=f"New version of {TEMPLATE}")).to_be_visible()
    status = page.get_by_role("status", name="Validation")
    expect(status).to_contain_text("Valid collector configuration")  # the starter
    replace_text(page, WITH_ERROR)

    # The server's verdict, debounced: one error, at line 15, column 27.
    expect(status).to_contain_text("1 error")
    errors = page.get_by_role("alert", name="Validation errors")
    expect(errors).to_contain_text("memory_limiter")
    place = errors.get_by_role("button", name=re.compile(rf"^{ERROR_LINE}:\d+$"))
    expect(place).to_be_visible()
    # Marked in the editor at that line: the underlined range is the processor's name, and
    # the gutter carries one error marker. (CodeMirror's own class names: it has no roles.)
    marked = page.locator(".cm-line").filter(has=page.locator(".cm-lintRange-error"))
    expect(marked).to_have_count(1)
    expect(marked).to_have_text("      processors: [batch, memory_limiter]")
    expect(marked.locator(".cm-lintRange-error")).to_have_text("memory_limiter")
    expect(page.locator(".cm-lint-marker-error")).to_have_count(1)
    line_numbers = page.locator(".cm-lineNumbers .cm-gutterElement")
    marked_box = marked.bounding_box()
    number_box = line_numbers.filter(has_text=re.compile(rf"^{ERROR_LINE}$")).bounding_box()
    assert marked_box and number_box
    assert abs(marked_box["y"] - number_box["y"]) < 4, "the mark is on line 15"
    page.get_by_label("Message").fill("first cut")
    page.screenshot(path=shots / "config-editor-errors.png")

    # Going to the line from the list puts the cursor there.
    place.click()
    expect(page.locator(".cm-activeLine")).to_have_text("      processors: [batch, memory_limiter]")

    # Saving it anyway: the server refuses it with a 422, shown the same way; nothing stored.
    page.get_by_role("button", name="Save version").click()
    expect(errors).to_contain_text("Not saved: the server refused this configuration")
    expect(errors.get_by_role("button", name=re.compile(rf"^{ERROR_LINE}:"))).to_be_visible()
    listed = fleet.org.get(f"/api/v1/configs/{fleet.state['config_id']}/versions").json()
    assert listed["items"] == []

    # Fixed: valid, saved as version 1.
    replace_text(page, V1)
    expect(status).to_contain_text("Valid collector configuration")
    expect(errors).to_have_count(0)
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)
    page.get_by_role("button", name="Save version").click()
    versions = page.get_by_role("table", name="Versions")
    expect(versions.get_by_role("row").filter(has_text="first cut")).to_contain_text("v1")
    stored = fleet.org.get(f"/api/v1/configs/{fleet.state['config_id']}/versions/1").json()
    assert stored["config_yaml"] == V1


def test_a_second_version_and_the_side_by_side_diff(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    open_template(page, fleet)
    page.get_by_role("link", name="Edit as new").click()
    expect(page.get_by_role("heading", name="Starting from v1")).to_be_visible()
    expect(editor(page)).to_contain_text("processors: [batch]")
    replace_text(page, V2)
    expect(page.get_by_role("status", name="Validation")).to_contain_text("Valid")
    page.get_by_label("Message").fill("debug verbosity; a metrics pipeline")
    page.get_by_role("button", name="Save version").click()
    versions = page.get_by_role("table", name="Versions")
    newest = versions.get_by_role("row").filter(has_text="metrics pipeline")
    expect(newest).to_contain_text("latest")

    versions.get_by_role("row").filter(has_text="v2").get_by_role("link", name="Diff").click()
    expect(page).to_have_url(re.compile(r"/diff\?from=1&to=2"))
    diff = page.get_by_role("table", name="Changes from v1 to v2")
    rows = diff.get_by_role("row")
    changed = rows.filter(has_text="removed:")
    expect(changed).to_have_count(1)
    expect(changed).to_contain_text("debug: {}")  # left: the old line
    expect(changed).to_contain_text("added:   debug:")  # right: the new one, same row
    expect(rows.filter(has_text="verbosity: basic")).to_contain_text("added:")
    expect(rows.filter(has_text="metrics:")).to_contain_text("added:")
    expect(page.get_by_text("+5")).to_be_visible()
    expect(page.get_by_text("\N{MINUS SIGN}1")).to_be_visible()
    page.screenshot(path=shots / "config-diff.png")

    # The list of templates shows each one's latest version (two more, made by a script).
    for name, description, bodies in (
        ("logs-to-loki", "filelog in, Loki out", [V1, V2]),
        ("metrics-scrape", None, []),
    ):
        made = fleet.org.admin.post(
            "/api/v1/configs",
            params={"org_id": fleet.org.id},
            json={"name": name, "description": description},
        )
        assert made.status_code == 201, made.text
        for body in bodies:
            assert fleet.org.admin.post(
                f"/api/v1/configs/{made.json()['id']}/versions",
                params={"org_id": fleet.org.id},
                json={"config_yaml": body},
            ).is_success
    page.goto(f"/orgs/{fleet.org.id}/configs")
    expect(page.get_by_role("link", name="metrics-scrape")).to_be_visible()
    line = page.get_by_role("table", name="Configuration templates").get_by_role("row")
    expect(line.filter(has_text=TEMPLATE)).to_contain_text("v2")
    page.screenshot(path=shots / "configs.png")


def test_deploy_to_a_selector_and_watch_it_reach_applied(
    page: Page, fleet: Fleet, shots: Path
) -> None:
    sign_in(page)
    open_template(page, fleet)
    page.get_by_role("button", name="Deploy v2").click()
    dialog = page.get_by_role("dialog", name=f"Deploy {TEMPLATE} v2")
    dialog.get_by_role("textbox", name="Selector", exact=True).fill("env=prod, region=eu")
    expect(dialog.get_by_role("status").filter(has_text="Matches")).to_have_text("Matches 3 agents")
    dialog.get_by_role("textbox", name="Selector", exact=True).fill("env=prod, region=eu, !ring")
    expect(dialog.get_by_role("status").filter(has_text="Matches")).to_have_text("Matches 2 agents")
    dialog.get_by_role("textbox", name="Selector", exact=True).fill("env in (prod")
    expect(dialog.get_by_role("alert")).to_contain_text("Invalid selector")
    dialog.get_by_role("textbox", name="Selector", exact=True).fill("env=prod")
    expect(dialog.get_by_role("status").filter(has_text="Matches")).to_have_text("Matches 3 agents")
    dialog.get_by_label("Message (optional)").fill("v2 everywhere in prod")
    dialog.get_by_role("button", name="Deploy", exact=True).click()

    expect(page).to_have_url(re.compile(r"/deployments/[0-9a-f-]+$"))
    fleet.state["v2_deployment"] = page.url.split("/")[-1]
    header = page.get_by_role("heading", name=re.compile(f"{TEMPLATE} v2"))
    # Live: every agent goes sent -> applying -> applied, and the deployment completes.
    for name in ("otel-eu-1", "otel-eu-2", "otel-canary-1"):
        expect(agent_row(page, name)).to_contain_text("applied", timeout=20_000)
    expect(header).to_contain_text("completed")
    expect(page.get_by_label("Counts")).to_contain_text("applied3")
    page.screenshot(path=shots / "deployment.png")
    for name in ("otel-eu-1", "otel-canary-1"):
        assert fleet.agents[name].received[-1] == V2
    assert fleet.agents["otel-eu-1"].received.count(V2) == 1

    # The agent's page lists the deployments that touched it.
    agent_row(page, "otel-eu-1").get_by_role("link").click()
    touched = page.get_by_role("table", name="Deployments of this agent")
    expect(touched.get_by_role("row").filter(has_text=f"{TEMPLATE} v2")).to_contain_text("applied")


def test_a_failing_canary_shows_its_error_and_the_rollback(
    page: Page, fleet: Fleet, shots: Path
) -> None:
    resp = fleet.org.admin.post(
        f"/api/v1/configs/{fleet.state['config_id']}/versions",
        params={"org_id": fleet.org.id},
        json={"config_yaml": V3_BAD, "message": "louder debug"},
    )
    assert resp.status_code == 201, resp.text
    sign_in(page)
    open_template(page, fleet)
    page.get_by_role("button", name="Deploy v3").click()
    dialog = page.get_by_role("dialog", name=f"Deploy {TEMPLATE} v3")
    dialog.get_by_role("textbox", name="Selector", exact=True).fill("env=prod")
    dialog.get_by_label("Staged").check()
    dialog.get_by_label("Batches (cumulative)").fill("1, 100%")
    dialog.get_by_label("Canary selector (first batch)").fill("ring=canary")
    expect(dialog.get_by_role("status").filter(has_text="Matches 1 agent")).to_be_visible()
    expect(dialog.get_by_label("Roll back automatically when the rollout fails")).to_be_checked()
    page.screenshot(path=shots / "deploy-dialog.png")
    dialog.get_by_role("button", name="Deploy", exact=True).click()

    expect(page).to_have_url(re.compile(r"/deployments/[0-9a-f-]+$"))
    original = page.url
    canary = agent_row(page, "otel-canary-1")
    expect(canary).to_contain_text("failed", timeout=20_000)
    expect(canary).to_contain_text(APPLY_ERROR)
    header = page.get_by_role("heading", name=re.compile(f"{TEMPLATE} v3"))
    expect(header).to_contain_text("rolled back", timeout=20_000)
    # The second batch was never sent: the other agents stayed on v2.
    expect(agent_row(page, "otel-eu-1")).to_contain_text("pending")
    assert V3_BAD not in fleet.agents["otel-eu-1"].received
    note = page.get_by_role("note").filter(has_text="Rolled back")
    expect(note).to_contain_text("failed to apply")
    expect(note.get_by_role("link", name="the rollback deployment")).to_be_visible()
    page.screenshot(path=shots / "deployment-rolled-back.png")

    note.get_by_role("link", name="the rollback deployment").click()
    expect(page.get_by_role("note").filter(has_text="This is a rollback of")).to_be_visible()
    expect(agent_row(page, "otel-canary-1")).to_contain_text("applied", timeout=20_000)
    expect(page.get_by_role("heading", name="Rollback")).to_contain_text("completed")
    assert fleet.agents["otel-canary-1"].received[-1] == V2, "the canary is back on v2"
    page.get_by_role("link", name="an earlier deployment").click()
    expect(page).to_have_url(original)

    page.goto(f"/orgs/{fleet.org.id}/deployments")
    table = page.get_by_role("table", name="Deployments")
    expect(table.get_by_role("row").filter(has_text=f"{TEMPLATE} v3")).to_contain_text(
        "rolled back"
    )
    expect(table.get_by_role("row").filter(has_text="Rollback")).to_contain_text("completed")

    # The template's page: its versions and every deployment of it.
    open_template(page, fleet)
    mine = page.get_by_role("table", name="Deployments of this template")
    expect(mine.get_by_role("row").filter(has_text=f"{TEMPLATE} v3")).to_contain_text("rolled back")
    page.set_viewport_size({"width": 1440, "height": 1400})
    page.screenshot(path=shots / "config-template.png")


def test_steer_a_paused_rollout_and_deploy_from_the_agents_page(page: Page, fleet: Fleet) -> None:
    sign_in(page)
    page.goto(f"/orgs/{fleet.org.id}/agents")
    page.get_by_role("checkbox", name="Select otel-eu-2").check()
    bar = page.get_by_role("region", name="Bulk actions")
    bar.get_by_role("button", name="Deploy configuration").click()
    dialog = page.get_by_role("dialog", name="Deploy a configuration")
    expect(dialog).to_contain_text("To 1 agent selected.")
    dialog.get_by_role("combobox", name=re.compile("^Template")).select_option(label=TEMPLATE)
    dialog.get_by_role("combobox", name=re.compile("^Version")).select_option(
        label="v1 — first cut"
    )
    dialog.get_by_role("button", name="Deploy", exact=True).click()
    expect(page).to_have_url(re.compile(r"/deployments/[0-9a-f-]+$"))
    expect(agent_row(page, "otel-eu-2")).to_contain_text("applied", timeout=20_000)
    expect(agent_row(page, "otel-canary-1")).to_have_count(0)
    assert fleet.agents["otel-eu-2"].received[-1] == V1

    # A staged rollout to a gateway that never applies (a REST gateway without reports) stays
    # rolling out: pause, resume and cancel it from the page.
    resp = fleet.org.admin.post(
        "/api/v1/deployments",
        params={"org_id": fleet.org.id},
        json={
            "config_id": fleet.state["config_id"],
            "version": 2,
            "target": {"selector": "env=staging"},
            "strategy": {"type": "staged", "batches": [1, "100%"]},
        },
    )
    assert resp.status_code == 201, resp.text
    page.goto(f"/orgs/{fleet.org.id}/deployments/{resp.json()['id']}")
    header = page.get_by_role("heading", name=re.compile(f"{TEMPLATE} v2"))
    expect(header).to_contain_text("rolling out")
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("dialog").get_by_role("button", name="Pause").click()
    expect(header).to_contain_text("paused")
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("dialog").get_by_role("button", name="Resume").click()
    expect(header).to_contain_text("rolling out")
    page.get_by_role("button", name="Cancel rollout").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel rollout").click()
    expect(header).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)


def test_a_viewer_sees_no_write_controls_on_configs_and_deployments(
    page: Page, fleet: Fleet
) -> None:
    _, email, password = new_member(fleet.org, "viewer")
    sign_in(page, email, password)
    page.goto(f"/orgs/{fleet.org.id}/configs")
    expect(page.get_by_role("link", name=TEMPLATE)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Create"))).to_have_count(0)
    open_template(page, fleet)
    expect(page.get_by_role("table", name="Versions")).to_contain_text("v3")
    for name in ("New version", "Edit as new"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Deploy"))).to_have_count(0)
    # Reading is fine: the diff opens.
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("table", name="Changes from v2 to v3")).to_be_visible()
    page.goto(f"/orgs/{fleet.org.id}/configs/{fleet.state['config_id']}/new")
    expect(page.get_by_text("Operators write configurations")).to_be_visible()
    expect(page.get_by_role("textbox", name=f"Configuration of {TEMPLATE}")).to_have_count(0)

    page.goto(f"/orgs/{fleet.org.id}/deployments/{fleet.state['v2_deployment']}")
    expect(page.get_by_role("heading", name=re.compile(f"{TEMPLATE} v2"))).to_be_visible()
    expect(agent_row(page, "otel-eu-1")).to_be_visible()
    for name in ("Pause", "Resume", "Cancel rollout", "Roll back"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    page.goto(f"/orgs/{fleet.org.id}/deployments")
    expect(page.get_by_role("table", name="Deployments")).to_be_visible()
    expect(page.get_by_role("link", name="Deploy from a template")).to_have_count(0)
    # The server refuses anyway (the viewer's own session, with its CSRF token).
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "flowgate_csrf")
    refused = page.request.post(
        f"/api/v1/deployments/{fleet.state['v2_deployment']}/rollback?org_id={fleet.org.id}",
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status == 403, refused.text()
