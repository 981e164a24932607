"""Shared fixtures and helpers of the browser tests (tests/ui/test_ui*.py).

One server per test module, one Chromium per module, a fresh browser context (its own cookies)
per test. Needs Debian's Chromium (``/usr/bin/chromium``, or ``FLOWGATE_CHROMIUM``), Node (the
UI is built once when ``backend/src/flowgate/ui/static`` is missing or older than
``frontend/``) and the ``playwright`` Python package (its own browser download is not used).
Skipped when one is missing, required when ``CI=true``. ``FLOWGATE_UI_SCREENSHOTS=1`` writes the
screenshots into ``docs/screenshots/`` (``make screenshots``); otherwise they go to a temporary
folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.api import Org, superuser_client
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

REPO = Path(__file__).resolve().parents[3]
FRONTEND = REPO / "frontend"
STATIC = REPO / "backend" / "src" / "flowgate" / "ui" / "static"
CHROMIUM = os.environ.get("FLOWGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def required(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def _ui_is_stale() -> bool:
    index = STATIC / "index.html"
    if not index.exists():
        return True
    built = index.stat().st_mtime
    sources = [
        *(FRONTEND / "src").rglob("*"),
        FRONTEND / "index.html",
        FRONTEND / "package-lock.json",
        FRONTEND / "vite.config.ts",
    ]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


@pytest.fixture(scope="session")
def built_ui() -> Path:
    """The production build of ``frontend/``, built here once when it is missing or stale."""
    if not Path(CHROMIUM).exists():
        required(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    if _ui_is_stale():
        npm = shutil.which("npm")
        if npm is None:
            required("npm not found: Node 20 is needed to build the web UI")
        assert npm is not None
        if not (FRONTEND / "node_modules" / ".package-lock.json").exists():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
        subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True)
    return STATIC


@pytest.fixture(scope="module")
def ui_server(built_ui: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        data_dir=tmp_path_factory.mktemp("ui") / "data",
        database_url=None,
        extra_env={"FLOWGATE_UI_DIR": str(built_ui)},
    )
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def superuser(ui_server: LiveServer) -> Iterator[httpx.Client]:
    with superuser_client(ui_server) as c:
        yield c


@pytest.fixture(scope="module")
def browser(ui_server: LiveServer) -> Iterator[Browser]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("FLOWGATE_UI_SCREENSHOTS"):
        target = REPO / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")


def new_context(browser: Browser, server: LiveServer, **kw: Any) -> BrowserContext:
    ctx = browser.new_context(
        base_url=server.url,
        viewport={"width": 1440, "height": 900},
        color_scheme=kw.pop("color_scheme", "light"),
        accept_downloads=True,
        **kw,
    )
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    return ctx


@pytest.fixture
def context(browser: Browser, ui_server: LiveServer) -> Iterator[BrowserContext]:
    ctx = new_context(browser, ui_server)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    from playwright.sync_api import expect

    page.goto("/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/orgs/[0-9a-f-]+/agents"))


def wait_live(page: Page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("status", name="Live updates: Live")).to_be_visible()


def new_member(org: Org, role: str) -> tuple[str, str, str]:
    """A user of ``org`` with ``role``: (id, email, password)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    password = "pw-" + uuid.uuid4().hex[:12]
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email, "password": password, "role": role},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"]), email, password
