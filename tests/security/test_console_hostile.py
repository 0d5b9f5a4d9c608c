"""Scenario 22: hostile crawled content shown in the console is inert text.

A real crawler process crawls a page whose title carries `<img src=x onerror=...>`
and `<script>`, whose links' anchor texts carry markup and whose URLs carry
payloads, and a page with a megabyte-long title; a page's final URL (where a
redirect landed, stored as the crawler saw it) is set to a `javascript:` URL.
The console shows the job in Chromium: the payloads appear literally as text,
no script of theirs runs (no dialog, no page error, no CSP violation, nothing
pushed to the watch list the payloads write to), every drawn link is http(s)
with rel="noopener noreferrer", and the `javascript:` URL is plain text, never
a link.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from playwright.sync_api import expect

from tests.console.fixtures import api_token, wait_job
from tests.hostile_pages import PageServer, Reply

pytest_plugins = ["tests.console.fixtures"]

RUN = "window.__ran.push('{}');alert('{}')"
TITLE = (f"<img src=x onerror=\"{RUN.format('title', 'title')}\">"
         f"<script>{RUN.format('ts', 'ts')}</script>")
ANCHOR = f"<b>bold</b><script>{RUN.format('anchor', 'anchor')}</script>"
JS_URL = f"javascript:{RUN.format('js', 'js')}"


def _site() -> dict[str, Reply]:
    evil = (
        "<html><head><title>&lt;img src=x onerror=\"" + RUN.format("title", "title")
        + "\"&gt;&lt;script&gt;" + RUN.format("ts", "ts") + "&lt;/script&gt;</title></head><body>"
        f"<a href=\"/long\">&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;{RUN.format('anchor', 'anchor')}"
        "&lt;/script&gt;</a>"
        "<a href=\"/q?x=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E\">query</a>"
        "</body></html>")
    long_title = "<b>" + "A" * 1_000_000
    return {
        "/": Reply(evil.encode()),
        "/long": Reply(f"<html><head><title>{long_title}</title></head><body>x</body></html>"
                       .encode()),
        "/q": Reply(b"<html><head><title>q</title></head><body>q</body></html>"),
        "/robots.txt": Reply(b"", 404),
    }


@pytest.mark.scenario(22, done="a real crawl of pages whose title, anchor texts and URLs carry "
                               "<img onerror>/<script> payloads, a 1 MB title and a javascript: "
                               "link, shown in the console's jobs list, job page and links",
                      checked="payloads shown literally as text; no dialog, page error, CSP "
                              "violation or payload run; every link http(s) and rel=noopener "
                              "noreferrer; the javascript: URL is no link")
def test_hostile_crawled_content_is_inert_text_in_the_console(console, console_stack,
                                                             console_users):
    alice = console_users["alice"][0]
    headers = api_token(console_stack, alice)
    with PageServer(_site()) as server:
        response = httpx.post(console_stack.settings.api_url + "/api/v1/jobs",
                              json={"start_urls": [server.url("/")]}, headers=headers,
                              timeout=30)
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        assert wait_job(console_stack, headers, job_id)["status"] == "finished"
        root = server.url("/")
        query_page = server.url("/q")
    with psycopg.connect(console_stack.settings.database_url) as conn:
        stored = conn.execute("SELECT title FROM pages WHERE job_id = %s AND url = %s",
                              (job_id, root)).fetchone()
        assert stored is not None and stored[0] == TITLE  # the payload reached the database
        # The links table takes http(s) only (a CHECK); a page's final URL is free text.
        conn.execute("UPDATE pages SET final_url = %s WHERE job_id = %s AND url LIKE %s",
                     (JS_URL, job_id, query_page + "%"))

    console.login(alice)
    page = console.page
    page.goto(f"{console.base}/#/jobs/{job_id}")
    rows = page.locator("#pages-table tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("#pages-table")).to_contain_text(TITLE[:100])
    long_cell = page.locator("#pages-table td span[title^='<b>AAA']")
    assert len(long_cell.inner_text()) <= 121  # a megabyte title is cut on screen
    page.locator("#pages-table tr", has_text=TITLE[:40]).get_by_role("button",
                                                                   name="Links").click()
    links = page.locator("#page-links")
    expect(links).to_contain_text(ANCHOR)
    expect(page.locator("#pages-table")).to_contain_text(JS_URL)  # shown, as text
    console.screenshot("hostile")
    # Nothing ran, nothing was parsed as markup.
    assert page.evaluate("window.__ran") == []
    assert console.dialogs == []
    assert page.locator("main img, main script, main b").count() == 0
    assert page.locator("a[href^='javascript:' i]").count() == 0
    for a in page.locator("a.url").all():
        assert a.get_attribute("href").startswith(("http://", "https://"))
        assert a.get_attribute("rel") == "noopener noreferrer"
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.locator(f"tr[data-job='{job_id}']")).to_be_visible()
    assert page.evaluate("window.__ran") == []
    console.assert_clean()
