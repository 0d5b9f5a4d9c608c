"""The console's jobs in a real browser: log in, submit a crawl through the form, watch it
finish live, see a form error next to its field, cancel with a confirmation, and never
reach another user's job."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
from playwright.sync_api import expect

from tests.console.fixtures import api_token, wait_job

pytest_plugins = ["tests.console.fixtures"]


def _submit(console, start_url: str, **fields: str) -> str:
    page = console.page
    page.get_by_role("link", name="New crawl").first.click()
    page.locator("#field-start_urls").fill(start_url)
    for name, value in fields.items():
        page.locator(f"#field-{name}").fill(value)
    page.get_by_role("button", name="Start the crawl").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def test_log_in_submit_a_crawl_and_watch_it_finish_live(console, console_stack, console_users,
                                                        mock_server):
    site = mock_server(pages=25, seed=5)
    alice = console_users["alice"][0]
    console.login(alice)
    page = console.page
    assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
    expect(page.get_by_role("heading", name="Your jobs")).to_be_visible()
    job_id = _submit(console, site.url("/p/0"), tags="console-test")
    # No reload from here on: the status and the counts come from the event stream.
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#card-status")).to_contain_text("finished", timeout=120_000)
    headers = api_token(console_stack, alice)
    api = console_stack.settings.api_url + f"/api/v1/jobs/{job_id}"
    api_job = httpx.get(api, headers=headers, timeout=30).json()
    rows = httpx.get(api + "/pages", params={"limit": 500}, headers=headers, timeout=30).json()
    # The crawl against the generator's truth; the console against the API.
    truth = site.site.page_urls(site.origin)
    assert {p["url"] for p in rows["items"] if p["status"] == 200} == truth
    pages = api_job["stats"]["pages"]
    expect(page.locator("#card-pages")).to_have_text(re.compile(rf"Responses\s*{pages}$"))
    # An ended job shows its average rate, not the live rate (0), and the chart's
    # legend its latest point rather than "--".
    seconds = (datetime.fromisoformat(api_job["finished_at"])
               - datetime.fromisoformat(api_job["started_at"])).total_seconds()
    average = pages / seconds
    card_rate = page.locator("#card-rate")
    expect(card_rate).to_contain_text("Responses/s, average")
    shown_rate = float(card_rate.locator(".card-value").inner_text().replace(",", ""))
    # The browser reads the times to the millisecond: 1% of a sub-second crawl's rate.
    assert abs(shown_rate - average) <= 0.05 + average / 100
    legend = page.locator(".u-legend .u-value")
    assert legend.count() >= 1 and "--" not in legend.all_inner_texts()
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#summary")).to_contain_text("2xx")
    expect(page.locator("#pages-table tbody tr")).to_have_count(len(rows["items"]))
    # The crawler's log, as the API gives it, shown as text.
    page.get_by_role("button", name="Show the end of the log").click()
    log = httpx.get(api + "/log", params={"max_bytes": 65536}, headers=headers,
                    timeout=30).json()["processes"][0]
    shown_log = page.locator("#log-tail pre.log")
    expect(shown_log).to_contain_text("Spider closed")
    assert shown_log.inner_text().strip() == log["text"].strip()
    console.screenshot("job")
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row.locator(".cell-status")).to_have_text("finished")
    expect(row.locator(".cell-pages")).to_have_text(str(pages))
    expect(row.locator(".cell-rate")).to_have_attribute("title", "average over the crawl")
    listed_rate = float(row.locator(".cell-rate").inner_text().replace(",", ""))
    assert abs(listed_rate - average) <= 0.05 + average / 100
    console.screenshot("jobs")
    console.assert_clean()


def test_a_form_error_shows_next_to_its_field(console, console_users, mock_server):
    site = mock_server(pages=3)
    console.login(console_users["alice"][0])
    page = console.page
    page.get_by_role("link", name="New crawl").first.click()
    page.locator("#field-start_urls").fill(site.url("/p/0"))
    page.locator("#field-include").fill("/p/\n([unclosed")
    page.get_by_role("button", name="Start the crawl").click()
    error = page.locator("[data-field=include] .field-error")
    expect(error).to_contain_text("include[1]")
    expect(page.locator("#field-include")).to_have_attribute("aria-invalid", "true")
    assert "#/submit" in page.url  # no job was made
    page.locator("#field-include").fill("")
    page.locator("#field-start_urls").fill("ftp://example.org/")
    page.get_by_role("button", name="Start the crawl").click()
    expect(page.locator("[data-field=start_urls] .field-error")).to_contain_text("start_urls[0]")
    expect(page.locator("[data-field=include] .field-error")).to_have_text("")
    console.screenshot("submit-error")
    console.assert_clean()


def test_cancel_and_delete_ask_first_then_act(console, console_stack, console_users, mock_server):
    site = mock_server(pages=200, seed=2, page_delay=0.5)
    console.login(console_users["alice"][0])
    page = console.page
    job_id = _submit(console, site.url("/p/0"))
    cancel = page.locator("#cancel-job")
    cancel.click()  # the confirmation is dismissed: nothing happens
    assert console.dialogs and console.dialogs[-1].startswith("confirm:")
    expect(page.locator("#card-status")).not_to_contain_text("cancelled")
    console.accept_dialogs = True
    page.locator("#cancel-job").click()
    expect(page.locator("#card-status")).to_contain_text("cancelled", timeout=30_000)
    headers = api_token(console_stack, console_users["alice"][0])
    job = wait_job(console_stack, headers, job_id)
    assert job["status"] == "cancelled"

    # An ended job offers Delete instead, asked first too; it leaves the list at once.
    console.accept_dialogs = False
    page.locator("#delete-job").click()
    assert console.dialogs[-1].startswith("confirm:") and "Delete job" in console.dialogs[-1]
    expect(page.locator("#delete-job")).to_be_visible()  # dismissed: still there
    console.accept_dialogs = True
    page.locator("#delete-job").click()
    expect(page.locator("#jobs table")).to_be_visible()
    expect(page.locator(f"tr[data-job='{job_id}']")).to_have_count(0)
    gone = httpx.get(f"{console_stack.settings.api_url}/api/v1/jobs/{job_id}", headers=headers,
                     timeout=30)
    assert gone.status_code == 404, gone.text
    console.assert_clean()


def test_another_users_job_is_not_reachable(console, console_stack, console_users,
                                            mock_server):
    site = mock_server(pages=2)
    alice, bob = console_users["alice"][0], console_users["bob"][0]
    response = httpx.post(f"{console_stack.settings.api_url}/api/v1/jobs",
                          json={"start_urls": [site.url("/p/0")], "tags": ["alice-only"]},
                          headers=api_token(console_stack, alice), timeout=30)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    console.login(bob)
    page = console.page
    expect(page.locator("#jobs table")).to_be_visible()
    expect(page.locator(f"tr[data-job='{job_id}']")).to_have_count(0)
    page.goto(f"{console.base}/#/jobs/{job_id}")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("alice-only")
    console.assert_clean()
