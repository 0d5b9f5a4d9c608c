"""The console is usable by keyboard and passes axe-core (no serious or critical violation)
on every view: login, jobs, a new crawl, a job, the network, top pages and users."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.api_fixtures import PASSWORDS
from tests.console.fixtures import api_token, wait_job

pytest_plugins = ["tests.console.fixtures"]

AXE = Path(__file__).resolve().parents[2] / "console" / "node_modules" / "axe-core" / "axe.min.js"


def _axe(page) -> list[str]:
    # axe-core is injected as a script: this page's context bypasses the CSP for it
    # (the CSP itself is checked by every other browser test).
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
        const tags = ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'];
        const r = await axe.run(document, { runOnly: tags });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                          nodes: v.nodes.map((n) => n.target.join(' ')) }));
    }""")
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}" for v in result
            if v["impact"] in ("serious", "critical")]


@pytest.fixture
def a11y_page(browser, console_stack):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_every_view_passes_axe_and_works_by_keyboard(a11y_page, console_stack, console_users,
                                                     mock_server):
    page = a11y_page
    base = console_stack.settings.api_url
    admin = console_users["admin"][0]
    site = mock_server(pages=12, seed=3)
    headers = api_token(console_stack, admin)
    job = httpx.post(f"{base}/api/v1/jobs", json={"start_urls": [site.url("/p/0")]},
                     headers=headers, timeout=30).json()
    assert wait_job(console_stack, headers, job["id"])["status"] == "finished"
    build = httpx.post(f"{base}/api/v1/jobs/{job['id']}/graphs", json={"level": "page"},
                       headers=headers, timeout=30).json()

    page.goto(base + "/")
    violations = {"login": _axe(page)}
    # Keyboard only: the page opens with the username focused; Tab, type, Enter logs in.
    page.locator("#username").wait_for()
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type(admin)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS[admin])
    page.keyboard.press("Enter")
    expect(page.locator("#logout")).to_be_visible()
    violations["jobs"] = _axe(page)
    # The skip link is the first focusable element and takes the keyboard to the content.
    first = "document.querySelector('a[href], button, input, select, textarea')"
    assert page.evaluate(f"{first}.textContent") == "Skip to content"
    page.locator(".skip").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for name, hash_, ready in (
        ("submit", "#/submit", "#field-start_urls"),
        ("job", f"#/jobs/{job['id']}", "#pages-table table"),
        ("users", "#/users", "#users table"),
    ):
        page.goto(f"{base}/{hash_}")
        page.locator(ready).wait_for()
        violations[name] = _axe(page)
    deadline_build = httpx.get(f"{base}/api/v1/graphs/{build['id']}", headers=headers,
                               timeout=30).json()
    for _ in range(120):
        if deadline_build["status"] in ("done", "failed"):
            break
        page.wait_for_timeout(500)
        deadline_build = httpx.get(f"{base}/api/v1/graphs/{build['id']}", headers=headers,
                                   timeout=30).json()
    assert deadline_build["status"] == "done"
    page.goto(f"{base}/#/graphs/{build['id']}")
    expect(page.locator("#network")).to_have_attribute("data-layout", "done", timeout=60_000)
    violations["network"] = _axe(page)
    page.goto(f"{base}/#/graphs/{build['id']}/top")
    page.locator("#top-table table").wait_for()
    violations["top"] = _axe(page)
    # Focus is visible: the focused control draws an outline.
    page.locator("#top-table button").first.focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    assert {view: found for view, found in violations.items() if found} == {}
