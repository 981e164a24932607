"""The alerting pages and the audit log in real Chromium, against a server with short thresholds.

This module runs its own server (the ``ui_server`` fixture below overrides conftest's): rules
are evaluated every 0.5 s and a gateway is unhealthy 4 s after it was last heard from, so a
gateway that stops heartbeating fires within seconds. The webhook receiver is a real HTTP
server that verifies every delivery's signature with the secret the page showed once. The tests
run in order and build on each other: a channel, a rule, alerts firing and resolving, a silence,
a viewer's read-only view, the admin's audit log of all of it.
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
from tests.support.server import ADMIN_EMAIL, LiveServer
from tests.support.webhooks import Receiver
from tests.ui.conftest import IN_CI, new_member, sign_in
from tests.ui.fleet import Heartbeats

if not IN_CI:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

ALERT_ENV = {
    "FLOWGATE_ALERT_INTERVAL_SECONDS": "0.5",
    "FLOWGATE_HEALTH_HEALTHY_SECONDS": "2",
    "FLOWGATE_HEALTH_WARNING_SECONDS": "4",
}
RULE = "prod gateways down"
CHANNEL = "on-call"
#: The alerts list refreshes itself every 10 s; a firing alert must show within that and more.
SHOWS_WITHIN_MS = 30_000

FLEET = [
    # name, labels
    ("edge-eu-1", {"env": "prod", "region": "eu"}),
    ("edge-eu-2", {"env": "prod", "region": "eu"}),
    ("edge-us-1", {"env": "prod", "region": "us"}),
    ("lab-1", {"env": "staging"}),
]


@dataclass
class Fleet:
    org: Org
    heartbeats: Heartbeats
    receiver: Receiver
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    beats: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def ui_server(built_ui: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        data_dir=tmp_path_factory.mktemp("ui-alerts") / "data",
        database_url=None,
        extra_env={"FLOWGATE_UI_DIR": str(built_ui), **ALERT_ENV},
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def fleet(ui_server: LiveServer, superuser: httpx.Client) -> Iterator[Fleet]:
    resp = superuser.post("/api/v1/orgs", json={"name": "acme-alerts"})
    assert resp.status_code == 201, resp.text
    org = Org(server=ui_server, id=resp.json()["id"], name="acme-alerts", admin=superuser)
    token = org.registration_token(name="fleet", max_uses=None)
    heartbeats = Heartbeats(org, interval=0.5).start()
    receiver = Receiver().start()
    fleet = Fleet(org=org, heartbeats=heartbeats, receiver=receiver)
    try:
        for name, labels in FLEET:
            gw = org.register(token=token, name=name, labels=labels, version="0.115.0")
            fleet.gateways[name] = gw
            # The staging gateway is silent from the start: the rule's selector leaves it out.
            if labels["env"] == "prod":
                heartbeats.add(gw, {"version": "0.115.0"})
        yield fleet
    finally:
        heartbeats.stop()
        receiver.stop()


def goto(page: Page, fleet: Fleet, path: str) -> None:
    page.goto(f"/orgs/{fleet.org.id}/{path}")


def alert_row(page: Page, gateway: str) -> Any:
    return (
        page.get_by_role("table", name="Alerts")
        .get_by_role("row")
        .filter(has=page.get_by_role("link", name=gateway, exact=True))
    )


# ---------------------------------------------------------------------------------------------


def test_add_a_webhook_see_its_secret_once_and_send_a_test(
    page: Page, fleet: Fleet, shots: Path
) -> None:
    sign_in(page)
    goto(page, fleet, "alerts/channels")
    expect(page.get_by_role("heading", name="No notification channels yet")).to_be_visible()
    page.get_by_role("button", name="Add webhook", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill(CHANNEL)
    dialog.get_by_label("URL").fill(fleet.receiver.url)
    dialog.get_by_role("button", name="Add webhook").click()

    created = page.get_by_role("dialog", name=f"Webhook “{CHANNEL}” added")
    secret = created.get_by_label("Signing secret").inner_text().strip()
    assert secret.startswith("whsec_"), secret
    expect(created.get_by_role("button", name="Copy secret")).to_be_visible()
    page.screenshot(path=shots / "channel-created.png")
    created.get_by_role("button", name="I have copied it").click()
    fleet.receiver.secret = secret

    # Shown once: not on the page afterwards, nor after a reload.
    row = page.get_by_role("table", name="Notification channels").get_by_role("row", name=CHANNEL)
    expect(row).to_be_visible()
    page.reload()
    expect(row).to_be_visible()
    assert secret not in page.content()

    row.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status", name=f"Test of {CHANNEL}")).to_have_text(
        "Delivered (HTTP 200)"
    )
    tests = fleet.receiver.events("test")
    assert len(tests) == 1 and tests[0]["channel"]["name"] == CHANNEL
    assert fleet.receiver.rejected == []


def test_create_a_rule(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    goto(page, fleet, "alerts/rules")
    expect(page.get_by_role("heading", name="No alert rules yet")).to_be_visible()
    page.get_by_role("button", name="Create rule", exact=True).click()
    dialog = page.get_by_role("dialog", name="Create an alert rule")
    dialog.get_by_label("Name").fill(RULE)
    dialog.get_by_label("When").select_option("gateway_unhealthy")
    dialog.get_by_label("For at least (minutes)").fill("0")
    dialog.get_by_label("Gateways (selector; empty: all)").fill("env=prod")
    dialog.get_by_label(CHANNEL).check()
    dialog.get_by_role("button", name="Create rule").click()
    expect(dialog).to_be_hidden()

    row = page.get_by_role("table", name="Alert rules").get_by_role("row", name=RULE)
    expect(row).to_contain_text("a gateway is unhealthy or offline")
    expect(row).to_contain_text("env=prod")
    expect(row).to_contain_text(CHANNEL)
    expect(row).to_contain_text("enabled")
    page.screenshot(path=shots / "alert-rules.png")

    # A bad selector is the server's 422, shown in the dialog; nothing is created.
    page.get_by_role("button", name="Create rule", exact=True).click()
    dialog.get_by_label("Name").fill("broken")
    dialog.get_by_label("Gateways (selector; empty: all)").fill("env in (")
    dialog.get_by_role("button", name="Create rule").click()
    expect(dialog.get_by_role("alert")).to_contain_text("selector")
    page.keyboard.press("Escape")
    expect(page.get_by_role("table", name="Alert rules").get_by_role("row")).to_have_count(2)


def test_a_gateway_that_stops_heartbeating_fires_and_one_that_returns_resolves(
    page: Page, fleet: Fleet, shots: Path
) -> None:
    sign_in(page)
    goto(page, fleet, "alerts")
    expect(page.get_by_role("heading", name="Nothing is firing")).to_be_visible()

    fleet.heartbeats.discard(fleet.gateways["edge-us-1"]["id"])
    fleet.heartbeats.discard(fleet.gateways["edge-eu-2"]["id"])
    for name in ("edge-us-1", "edge-eu-2"):
        row = alert_row(page, name)
        expect(row).to_be_visible(timeout=SHOWS_WITHIN_MS)
        expect(row).to_contain_text("firing")
        expect(row).to_contain_text(RULE)
        expect(row).to_contain_text("env=prod")

    # The receiver got one signed firing notification for each, and none for staging.
    firing = wait_for(lambda: len(fleet.receiver.events("firing")) >= 2 or None, timeout=15)
    assert firing
    names = sorted(d["alert"]["subject_name"] for d in fleet.receiver.events("firing"))
    assert names == ["edge-eu-2", "edge-us-1"]
    assert fleet.receiver.rejected == []
    expect(alert_row(page, "lab-1")).to_have_count(0)

    # edge-eu-2 comes back: its alert resolves (and leaves the firing list).
    fleet.heartbeats.add(fleet.gateways["edge-eu-2"], {"version": "0.115.0"})
    expect(alert_row(page, "edge-eu-2")).to_have_count(0, timeout=SHOWS_WITHIN_MS)
    page.get_by_role("tab", name="Resolved").click()
    expect(alert_row(page, "edge-eu-2")).to_contain_text("resolved")
    wait_for(lambda: fleet.receiver.events("resolved"), timeout=15)

    page.get_by_role("tab", name="All").click()
    expect(alert_row(page, "edge-us-1")).to_contain_text("firing")
    expect(alert_row(page, "edge-eu-2")).to_contain_text("resolved")
    page.screenshot(path=shots / "alerts.png")

    # The channel's deliveries list what was sent.
    goto(page, fleet, "alerts/channels")
    page.get_by_role("button", name="Deliveries").click()
    deliveries = page.get_by_role("table", name="Deliveries")
    expect(deliveries.get_by_role("row").filter(has_text="firing")).to_have_count(2)
    expect(deliveries).to_contain_text("sent (HTTP 200)")


def test_silence_a_firing_alert(page: Page, fleet: Fleet, shots: Path) -> None:
    sign_in(page)
    goto(page, fleet, "alerts")
    alert_row(page, "edge-us-1").get_by_role("button", name="Silence").click()
    dialog = page.get_by_role("dialog", name="Create a silence")
    expect(dialog.get_by_label("Rule")).to_have_value(
        wait_for(lambda: fleet.org.get("/api/v1/alert-rules").json())[0]["id"]
    )
    expect(dialog.get_by_label(re.compile("Alert labels"))).to_have_value("env=prod,region=us")
    dialog.get_by_label("Comment").fill("maintenance in us")
    dialog.get_by_role("button", name="Create silence").click()
    expect(dialog).to_be_hidden()

    # The alert is still listed, marked silenced (from the next evaluation on).
    expect(alert_row(page, "edge-us-1")).to_contain_text("silenced", timeout=SHOWS_WITHIN_MS)

    goto(page, fleet, "alerts/silences")
    row = page.get_by_role("table", name="Silences").get_by_role("row", name=re.compile(RULE))
    expect(row).to_contain_text("env=prod,region=us")
    expect(row).to_contain_text("maintenance in us")
    expect(row).to_contain_text("in force")
    page.screenshot(path=shots / "silences.png")


def test_a_viewer_reads_every_alerting_page_without_write_controls(
    page: Page, fleet: Fleet
) -> None:
    _, email, password = new_member(fleet.org, "viewer")
    sign_in(page, email, password)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Alerts")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit", exact=True)).to_have_count(0)

    writes = re.compile(
        r"^(Create rule|Create a rule|Add webhook|Add a webhook|Send test|Delete|Disable|"
        r"Enable|Silence|Create silence|Create a silence|End silence)$"
    )
    pages = {
        "alerts?state=": ("table", "Alerts"),
        "alerts/rules": ("table", "Alert rules"),
        "alerts/channels": ("table", "Notification channels"),
        "alerts/silences": ("table", "Silences"),
    }
    for path, (role, name) in pages.items():
        goto(page, fleet, path)
        expect(page.get_by_role(role, name=name)).to_be_visible()
        expect(page.get_by_role("button", name=writes)).to_have_count(0)
    # Deliveries are readable.
    goto(page, fleet, "alerts/channels")
    page.get_by_role("button", name="Deliveries").click()
    expect(page.get_by_role("table", name="Deliveries")).to_be_visible()

    goto(page, fleet, "audit")
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()


def test_the_admin_reads_the_audit_log_of_what_was_just_done(
    page: Page, fleet: Fleet, shots: Path
) -> None:
    sign_in(page)
    goto(page, fleet, "agents")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Audit", exact=True).click()
    expect(page).to_have_url(re.compile(r"/audit$"))
    log = page.get_by_role("table", name="Audit log")
    for action in (
        "notification_channel.create",
        "notification_channel.test",
        "alert_rule.create",
        "silence.create",
    ):
        row = (
            log.get_by_role("row")
            .filter(has=page.get_by_role("button", name=action, exact=True))
            .filter(has_text="success")
        )
        expect(row).to_have_count(1)
        expect(row).to_contain_text(ADMIN_EMAIL)
    # The refused rule (bad selector) is there too, as failed.
    failed = log.get_by_role("row").filter(has_text="alert_rule.create").filter(has_text="failed")
    expect(failed).to_have_count(1)
    page.mouse.move(700, 880)  # no hover highlight in the picture
    page.screenshot(path=shots / "audit.png")

    # A click on an action filters by it; a prefix ending in "." takes the family.
    log.get_by_role("button", name="silence.create", exact=True).click()
    expect(page).to_have_url(re.compile(r"action=silence\.create"))
    expect(log.get_by_role("row")).to_have_count(2)  # header + one entry
    page.get_by_label("Action").fill("alert_rule.")
    page.get_by_role("button", name="Filter").click()
    expect(log.get_by_role("row").filter(has_text="alert_rule.create")).to_have_count(2)
    expect(log.get_by_role("row").filter(has_text="silence.create")).to_have_count(0)
    page.get_by_role("button", name="Clear", exact=True).click()
    expect(log.get_by_role("row").filter(has_text="silence.create")).to_have_count(1)
