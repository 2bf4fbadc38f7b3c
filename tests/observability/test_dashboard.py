"""The dashboard in a real headless browser (Debian's chromium driven by Playwright): it loads, signs in,
shows the numbers of a scripted run, creates, uses and blocks a key through LiteLLM's admin API, works
without that API, fits a phone's screen, and logs no console error. Screenshots are saved under the
test's temporary directory and, when ``ANYGATE_ARTIFACTS`` is set, copied there."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MASTER_KEY
from tests.fakes.admin_api import FakeAdminApi
from tests.fakes.gateway_server import GatewayServer
from tests.fakes.upstream import FakeUpstream, Json
from tests.observability.support import BODY, CHAT, completion, config, scripted_run, wait_for
from tests.rawhttp import send

BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "the dashboard tests need Debian's chromium: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, artifacts: Path, **context: Any) -> None:
        # Playwright's waits evaluate strings, which the page's strict CSP forbids: bypassed in tests only.
        self.context = browser.new_context(bypass_csp=True, **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.artifacts = artifacts
        self.page.on(
            "console", lambda m: self.errors.append(f"{m.text} {m.location}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        target = os.environ.get("ANYGATE_ARTIFACTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)
        return path

    def sign_in(self, base_url: str, key: str = MASTER_KEY) -> None:
        page = self.page
        page.goto(base_url + "/ui")
        page.fill("#signin-key", key)
        page.click("#signin-form button")
        page.wait_for_selector("#dashboard:not([hidden])")
        page.wait_for_function("document.querySelectorAll('#tiles .tile').length === 8")

    def tile(self, label: str) -> str:
        text: str = self.page.inner_text(f'#tiles .tile[data-label="{label}"] .value')
        return text


@pytest.fixture
def admin() -> FakeAdminApi:
    return FakeAdminApi()


@pytest.fixture
def dashboard_server(upstream: FakeUpstream, admin: FakeAdminApi) -> Iterator[GatewayServer]:
    server = GatewayServer(config(upstream), hooks=[admin], routes=admin.routes).start()
    yield server
    server.stop()


def test_the_dashboard_shows_a_scripted_run_and_manages_keys(
    browser: Any, dashboard_server: GatewayServer, upstream: FakeUpstream, admin: FakeAdminApi, tmp_path: Path
) -> None:
    url = dashboard_server.url
    expected = scripted_run(url, upstream)
    answered = expected.ok + expected.upstream_400 + expected.client_gone

    def summary() -> Any:
        return send(url, "GET", "/ui/api/summary?window=3600", headers={"x-api-key": MASTER_KEY}).json()

    wait_for(lambda: summary()["totals"]["requests"] == answered)  # the client that left is counted
    totals = summary()["totals"]

    view = Page(browser, tmp_path, viewport={"width": 1280, "height": 900})
    page = view.page
    page.goto(url + "/ui")
    page.wait_for_selector("#signin:not([hidden])")
    page.fill("#signin-key", "sk-not-the-key-00000")
    page.click("#signin-form button")
    page.wait_for_function("document.querySelector('#signin-error').textContent.length > 0")
    view.errors.clear()  # the refused sign-in's 401 is the browser's own console line

    view.sign_in(url)
    assert view.tile("Requests") == str(answered)
    assert view.tile("Errors") == f"{expected.upstream_400} ({expected.upstream_400 / answered * 100:.1f}%)"
    assert view.tile("Spend") == f"${totals['spend']:.2f}"
    assert view.tile("Cache hit rate") == f"{totals['cache_hit_rate'] * 100:.1f}%"
    assert page.locator("#requests tbody tr").count() == answered
    assert page.locator("#chart-traffic canvas").count() == 1
    health = page.inner_text("#health tbody")
    assert "gpt-a" in health and "cooling down" in health and "boom" in health
    assert "gpt" in page.inner_text("#breakdown tbody")

    # Filters: only the failed request, then only the client that left.
    page.fill('#filters input[name="status"]', "400")
    page.click("#filters button")
    page.wait_for_function("document.querySelectorAll('#requests tbody tr').length === 1")
    assert "bad request" in page.inner_text("#requests tbody")
    page.fill('#filters input[name="status"]', "")
    page.select_option('#filters select[name="outcome"]', "client_gone")
    page.click("#filters button")
    page.wait_for_function("document.querySelector('#requests tbody').innerText.includes('client left')")
    view.screenshot("dashboard-desktop")
    page.select_option('#filters select[name="outcome"]', "")
    page.select_option('#filters select[name="stop_reason"]', "end_turn")
    page.click("#filters button")
    page.wait_for_function(f"document.querySelectorAll('#requests tbody tr').length === {expected.ok}")
    assert page.inner_text("#requests tbody").count("end_turn") == expected.ok
    page.select_option('#filters select[name="stop_reason"]', "")

    # Keys: create (shown once), use, then block.
    assert page.is_visible("#keys-panel") and page.is_visible("#teams-panel")
    page.fill('#key-form input[name="key_alias"]', "ci-key")
    page.fill('#key-form input[name="team_id"]', "team-ci")
    page.click("#key-form button")
    page.wait_for_selector("#new-key:not([hidden])")
    key = page.inner_text("#new-key-value")
    assert key.startswith("sk-")
    page.wait_for_function("document.querySelector('#keys tbody').innerText.includes('ci-key')")
    view.screenshot("dashboard-new-key")
    page.click("#new-key-done")
    assert key not in page.content()  # shown once: gone from the page

    upstream.script(CHAT, Json(completion(3, 2)))
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    assert send(url, "POST", "/v1/messages", BODY, headers).status == 200
    page.click("#refresh")
    page.click('#breakdown-tabs button[data-dim="team"]')
    page.wait_for_function("document.querySelector('#breakdown tbody').innerText.includes('team-ci')")

    page.click('#keys tbody button[data-action="block"]')
    page.wait_for_function("document.querySelector('#keys tbody').innerText.includes('blocked')")
    assert next(iter(admin.keys.values()))["blocked"] is True
    assert send(url, "POST", "/v1/messages", BODY, headers).status == 401
    page.click('#keys tbody button[data-action="delete"]')
    page.wait_for_function("!document.querySelector('#keys tbody').innerText.includes('ci-key')")
    assert admin.keys == {}

    page.fill('#team-form input[name="team_alias"]', "platform")
    page.click("#team-form button")
    page.wait_for_function("document.querySelector('#teams tbody').innerText.includes('platform')")
    view.screenshot("dashboard-keys-and-teams")
    assert view.errors == []
    view.context.close()


def test_without_an_admin_api_the_panels_stay_hidden_and_a_phone_can_read_it(
    browser: Any, upstream: FakeUpstream, tmp_path: Path
) -> None:
    server = GatewayServer(config(upstream)).start()
    try:
        upstream.script(CHAT, Json(completion(10, 5)))
        assert send(server.url, "POST", "/v1/messages", BODY, {"x-api-key": MASTER_KEY}).status == 200
        view = Page(browser, tmp_path, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        view.sign_in(server.url)
        page = view.page
        assert view.tile("Requests") == "1"
        assert not page.is_visible("#keys-panel") and not page.is_visible("#teams-panel")
        # Nothing wider than the screen but the tables, which scroll inside their cards.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, overflow
        view.screenshot("dashboard-phone")
        page.click("#signout")
        page.wait_for_selector("#signin:not([hidden])")
        assert view.errors == []
        view.context.close()
    finally:
        server.stop()


def test_the_dashboard_api_needs_an_admin_and_static_files_are_served(
    dashboard_server: GatewayServer,
) -> None:
    url = dashboard_server.url
    page = send(url, "GET", "/ui")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"/ui/app.js" in page.body
    assert (
        send(url, "GET", "/ui/vendor/uPlot.iife.min.js").headers["content-type"].startswith("text/javascript")
    )
    assert send(url, "GET", "/ui/vendor/uPlot.LICENSE").status == 200
    assert send(url, "GET", "/ui/nothing.js").status == 404
    assert send(url, "GET", "/ui/api/summary").status == 401
    assert send(url, "GET", "/ui/api/summary?window=7", headers={"x-api-key": MASTER_KEY}).status == 400
    who = send(url, "GET", "/ui/api/whoami", headers={"x-api-key": MASTER_KEY}).json()
    assert "/key/list" in who["admin_routes"]
