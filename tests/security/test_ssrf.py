"""Scenario 11: SSRF. Private targets are refused when submitted, discovered or redirected to.

Canary servers listen on 127.0.0.1 and [::1]: every loopback spelling below
points at them, so "none reaches the target" is checked by their count of
accepted connections, not only by the guard's own word. The crawl reaches a
permitted site on 127.0.0.3, let through with
`CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS = ["127.0.0.3/32"]` while the guard
stays on for every other private address; targets that cannot host a canary
(10.0.0.5, the metadata address) are checked by the guard's refusal count and
the absence of any page fetched from them.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from crawler.urls import canonicalize, host_key
from tests.api_fixtures import assert_error, login
from tests.crawlrun import run_crawl
from tests.hostile_pages import PageServer, Reply

pytest_plugins = ["tests.api_fixtures"]

SITE = "crawler.spiders.site.SiteSpider"
PERMITTED_HOST = "127.0.0.3"


@pytest.fixture
def canaries() -> Iterator[tuple[PageServer, PageServer]]:
    """HTTP servers on 127.0.0.1 and [::1] that count every connection they accept."""
    with PageServer(host="127.0.0.1") as v4, PageServer(host="::1") as v6:
        yield v4, v6


def spellings(v4: int, v6: int) -> dict[str, str]:
    """Scenario 11's list: name -> URL (loopback ones on the canary ports)."""
    return {
        "127.0.0.1": f"http://127.0.0.1:{v4}/a",
        "[::1]": f"http://[::1]:{v6}/b",
        "[::ffff:169.254.169.254]": "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "2130706433": f"http://2130706433:{v4}/c",
        "0x7f000001": f"http://0x7f000001:{v4}/d",
        "0177.0.0.1": f"http://0177.0.0.1:{v4}/e",
        "10.0.0.5": "http://10.0.0.5/f",
        "localhost (a name resolving to loopback)": f"http://localhost:{v4}/g",
        # Beyond the list: other ways to the same canaries.
        "[::ffff:127.0.0.1]": f"http://[::ffff:127.0.0.1]:{v4}/h",
        "127.1": f"http://127.1:{v4}/i",
        "0.0.0.0": f"http://0.0.0.0:{v4}/j",
    }


@pytest.mark.scenario(11, done="submit a job at each private spelling (canaries on loopback)",
                      checked="each 422 naming the URL's field; no job stored; no connection "
                              "reaches a canary")
def test_submitted_private_urls_are_refused(client, users, database_url, canaries):
    v4, v6 = canaries
    alice = login(client, "alice")
    for name, url in spellings(v4.port, v6.port).items():
        body = {"start_urls": ["https://example.org/", url], "max_pages": 1}
        response = client.post("/api/v1/jobs", json=body, headers=alice)
        error = assert_error(response, 422, "validation_error", field="start_urls[1]")
        assert "points at" in error["message"], (name, error)
        assert "ALLOW_PRIVATE_NETWORKS" in error["hint"], (name, error)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
    assert (v4.connections, v6.connections) == (0, 0)


def _permitted_site(links: list[str], redirects: dict[str, str]) -> dict[str, Reply]:
    anchors = "".join(f'<a href="{url}">{i}</a>' for i, url in enumerate(links))
    anchors += "".join(f'<a href="{path}">redirect</a>' for path in redirects)
    routes = {
        "/": Reply(f"<html><head><title>start</title></head><body>{anchors}</body></html>"
                   .encode()),
        "/robots.txt": Reply(b"User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"}),
    }
    for path, target in redirects.items():
        routes[path] = Reply(b"", 302, {"Location": target})
    return routes


@pytest.mark.scenario(11, done="crawl a permitted site linking to every spelling and redirecting "
                               "to 169.254.169.254 and to a loopback canary (guard on)",
                      checked="the permitted pages are fetched; every private target is refused "
                              "by the guard; no canary sees a connection; no page stored from "
                              "a private host")
def test_discovered_and_redirected_private_urls_are_refused(canaries):
    v4, v6 = canaries
    targets = spellings(v4.port, v6.port)
    redirects = {"/to-metadata": "http://169.254.169.254/latest/meta-data/iam/",
                 "/to-canary": f"http://127.0.0.1:{v4.port}/via-redirect",
                 "/to-decimal": f"http://2130706433:{v4.port}/via-redirect"}
    with PageServer(_permitted_site(list(targets.values()), redirects),
                    host=PERMITTED_HOST) as site:
        # Every target is inside the crawl's scope: only the guard can stop it.
        domains = sorted({host_key(canonicalize(u)).rsplit(":", 1)[0]
                          for u in [*targets.values(), *redirects.values(), site.url()]})
        result = run_crawl(SITE, {"start_urls": [site.url("/")], "allowed_domains": domains},
                           {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": False,
                            "CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS": [f"{PERMITTED_HOST}/32"],
                            "DOWNLOAD_TIMEOUT": 5, "RETRY_ENABLED": False,
                            "CONCURRENT_REQUESTS": 32},
                           env={"ALLOW_PRIVATE_NETWORKS": ""}, timeout=180)
        site_paths = set(site.paths)
    assert result.returncode == 0, result.log[-3000:]
    # The permitted site was crawled: the start page and each redirecting page.
    assert {"/", *redirects} <= site_paths, site_paths
    stored = {p["url"] for p in result.pages}
    assert canonicalize(site.url("/")) in stored
    # No target was reached ...
    assert (v4.connections, v6.connections) == (0, 0), (v4.paths, v6.paths)
    # ... because the guard refused every discovered target and every redirect target.
    assert result.stats.get("addressguard/refused") == len(targets) + len(redirects), \
        result.stats
    fetched_hosts = {host_key(p["final_url"]) for p in result.pages}
    assert fetched_hosts == {host_key(site.url())}, fetched_hosts
    assert not [p for p in result.pages if p["url"] != canonicalize(site.url("/"))
                and not p["url"].startswith(site.origin)], result.pages
