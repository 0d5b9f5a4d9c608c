"""Fixtures of the console's browser tests: the whole stack and a real Chromium.

A plugin: a test module asks for it with `pytest_plugins = ["tests.console.fixtures"]`
(tests/security's console scenario does too).

PYTEST_DONT_REWRITE: test modules import helpers from here before pytest registers
it as a plugin; plain asserts are fine for its few checks.

`console_stack` starts what `crawlgraph up` starts (PostgreSQL, Redis, scrapyd,
the API that serves the console, a graph worker) once for these tests, in a
temporary data directory on free loopback ports. `browser` is Debian's
Chromium driven by Playwright (it never downloads a browser). `console` opens a
fresh browser context (no cookies) and records what must never happen: page
errors, console errors, dialogs and Content-Security-Policy violations.
Screenshots go to out/console/ for a person to look at.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from stack import Stack
from tests.api_fixtures import PASSWORDS, add_user
from tests.conftest import make_home, stack_environ

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "console"
CHROMIUM = "/usr/bin/chromium"
# Records CSP violations in the page (an init script is not subject to the page's CSP).
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
window.__ran = [];
"""


@pytest.fixture(scope="session")
def console_stack() -> Iterator[Stack]:
    home = make_home()
    stack = Stack(stack_environ(home))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def console_users(console_stack: Stack) -> dict[str, tuple[str, int]]:
    """An admin and two users with fresh names for this test: key -> (name, id).

    Fresh per test: the stack's login limits (10 a user, 50 an address per 5 minutes)
    are real, and every test logs in."""
    suffix = secrets.token_hex(3)
    made = {}
    for key, role in (("admin", "admin"), ("alice", "user"), ("bob", "user")):
        name = f"{key}_{suffix}"
        made[key] = (name, add_user(console_stack.settings.database_url, name, role))
    return made


# Module scope, not session: Playwright's sync API keeps an event loop running in
# the main thread while it is open, and every later test that calls asyncio.run()
# would fail with "asyncio.run() cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@dataclass
class Console:
    """A browser page on the console, with what it must never do recorded."""

    page: Page
    base: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    accept_dialogs: bool = False

    def login(self, username: str) -> None:
        self.page.goto(self.base + "/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORDS[username])
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.locator("#logout")).to_be_visible()

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations || []")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.csp_violations() == []


@pytest.fixture
def console(browser: Browser, console_stack: Stack) -> Iterator[Console]:
    base = console_stack.settings.api_url
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    context.add_init_script(WATCH)
    page = context.new_page()
    page.set_default_timeout(15_000)
    seen = Console(page=page, base=base)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))

    def console_message(msg: Any) -> None:
        # Chromium logs every HTTP error answer (the 401 of a page opened logged out, a 422
        # the form shows) as "Failed to load resource"; the tests check those answers.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            seen.errors.append(f"console {msg.type}: {msg.text}")

    page.on("console", console_message)

    def dialog(d: Any) -> None:
        seen.dialogs.append(f"{d.type}: {d.message}")
        d.accept() if seen.accept_dialogs else d.dismiss()

    page.on("dialog", dialog)
    yield seen
    context.close()


_TOKENS: dict[str, dict[str, str]] = {}


def api_token(stack: Stack, username: str) -> dict[str, str]:
    """A bearer token's header for this user, fetched once (logins are rate limited)."""
    if username in _TOKENS:
        return _TOKENS[username]
    response = httpx.post(stack.settings.api_url + "/api/v1/auth/token",
                          json={"username": username, "password": PASSWORDS[username]},
                          timeout=30)
    assert response.status_code == 200, response.text
    _TOKENS[username] = {"Authorization": f"Bearer {response.json()['access_token']}"}
    return _TOKENS[username]


def wait_job(stack: Stack, headers: dict[str, str], job_id: str,
             timeout: float = 120.0) -> dict[str, Any]:
    """The job once it has ended (finished, failed or cancelled), read through the API."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{stack.settings.api_url}/api/v1/jobs/{job_id}", headers=headers,
                        timeout=30).json()
        if job["status"] in ("finished", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end in {timeout} s")
