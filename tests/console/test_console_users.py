"""Users admin in a real browser: an admin lists, adds, disables and promotes users; a user
has no such page."""

from __future__ import annotations

import secrets

import httpx
from playwright.sync_api import expect

pytest_plugins = ["tests.console.fixtures"]


def test_an_admin_adds_disables_and_promotes_a_user(console, console_stack, console_users):
    console.login(console_users["admin"][0])
    page = console.page
    page.get_by_role("link", name="Users").click()
    expect(page.locator(f"tr[data-user='{console_users['bob'][0]}']")).to_be_visible()
    name, password = f"carol_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Add").click()
    row = page.locator(f"tr[data-user='{name}']")
    expect(row).to_contain_text("enabled")
    token_url = console_stack.settings.api_url + "/api/v1/auth/token"
    creds = {"username": name, "password": password}
    assert httpx.post(token_url, json=creds, timeout=30).status_code == 200
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    assert httpx.post(token_url, json=creds, timeout=30).status_code == 401
    row.get_by_role("button", name="Make admin").click()
    expect(row.locator("td").nth(1)).to_have_text("admin")
    console.screenshot("users")
    console.assert_clean()


def test_a_user_has_no_users_page(console, console_users):
    console.login(console_users["alice"][0])
    page = console.page
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.goto(console.base + "/#/users")
    expect(page.locator("main")).to_contain_text("Only an admin manages users.")
    console.assert_clean()
