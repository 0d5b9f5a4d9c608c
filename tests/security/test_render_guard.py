"""Scenario 21: what Chromium reaches while rendering passes the same private-address guard.

The public site is `www.site.test` and the internal host `internal.test`,
both names mapped with `CRAWLGRAPH_RESOLVE` (as a DNS answer would): the
site to 127.0.0.3, let through with `CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS`,
the internal host to a canary on 127.0.0.1. Its rendered page loads a script
from the internal host, fetch()es and XHRs it, opens a WebSocket and a
WebRTC TURN connection to it, sends STUN to a UDP canary, and links to a
page that redirects there. No URL holds an IP literal, so only a guard that
resolves what Chromium connects to can stop them; the canaries' own counts
say whether anything got through. The same crawl with private networks
allowed shows that each of them does reach the canary then.
"""

from __future__ import annotations

import json

import pytest

from tests.crawlrun import CrawlResult, run_crawl
from tests.hostile_pages import PageServer, Reply
from tests.security.renderpages import UdpCanary, guarded_site

pytestmark = pytest.mark.browser

SITE = "crawler.spiders.site.SiteSpider"
SITE_HOST, INTERNAL_HOST = "www.site.test", "internal.test"
REACHED = {"/script.js", "/fetch", "/xhr", "/ws", "/target", "/literal", "/localhost"}


def _crawl(site: PageServer, canary: PageServer, allow_private: bool) -> CrawlResult:
    resolve = [f"{SITE_HOST}:{site.port}:{site.host}", f"{INTERNAL_HOST}:{canary.port}:127.0.0.1"]
    result = run_crawl(
        SITE, {"start_urls": json.dumps([f"http://{SITE_HOST}:{site.port}/"]),
               "render_js": "always", "max_depth": "1"},
        {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": allow_private,
         "CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS": [f"{site.host}/32"],
         "CRAWLGRAPH_RESOLVE": resolve, "RETRY_ENABLED": False, "DOWNLOAD_TIMEOUT": 20},
        env={"ALLOW_PRIVATE_NETWORKS": ""}, timeout=180)
    assert result.returncode == 0 and result.reason == "finished", result.log[-3000:]
    return result


def _servers(udp: UdpCanary) -> tuple[PageServer, PageServer]:
    canary = PageServer({"/target": Reply(b"<html><title>internal</title></html>")})
    site = PageServer(host="127.0.0.3")
    site.routes.update(guarded_site(f"http://{INTERNAL_HOST}:{canary.port}", udp.port))
    return site, canary


@pytest.mark.scenario(21, done="render (Chromium) a page whose script, fetch(), XHR, WebSocket, "
                               "WebRTC TURN/STUN and 301 target use a name resolving to a "
                               "loopback canary (CRAWLGRAPH_RESOLVE), guard on",
                      checked="the canaries see no connection and no datagram; the crawl counts "
                              "and logs the refusals; the redirected page is a page error "
                              "naming the refused address; with private networks allowed the "
                              "canary does see each request")
def test_chromium_cannot_reach_a_private_address_by_name():
    with UdpCanary() as udp:
        site, canary = _servers(udp)
        with site, canary:
            guarded = _crawl(site, canary, allow_private=False)
            seen_guarded = (canary.connections, list(canary.paths), udp.datagrams)
            site_paths = set(site.paths)
            canary.paths.clear()
            allowed = _crawl(site, canary, allow_private=True)
            seen_allowed = (canary.connections, set(canary.paths), udp.datagrams)
    origin = f"http://{SITE_HOST}:{site.port}"
    internal = f"http://{INTERNAL_HOST}:{canary.port}"
    # The page was rendered through the guard (named site, mapped address) ...
    assert {"/", "/slow.js", "/moved"} <= site_paths, site_paths
    pages = {p["url"]: p for p in guarded.pages}
    start = pages[f"{origin}/"]
    assert (start["status"], start["rendered"], start["title"]) == (200, True, "guarded")
    # ... and nothing of it reached the internal host, by TCP or UDP.
    assert seen_guarded == (0, [], 0), seen_guarded
    refused = guarded.stats.get("rendering/guard_refused", 0)
    assert refused >= 5, guarded.stats
    for host in (INTERNAL_HOST, "127.0.0.1"):
        assert (f"render guard refused {host}:{canary.port}: {host} resolves to "
                "127.0.0.1 (loopback)") in guarded.log, host
    assert f"render guard refused localhost:{canary.port}: localhost resolves to" in guarded.log
    moved = pages[f"{origin}/moved"]
    assert moved["status"] == 0 and moved["rendered"], moved
    assert (f"refused private address: {INTERNAL_HOST} resolves to 127.0.0.1 (loopback)"
            in moved["error"]), moved["error"]

    # With private networks allowed, the same page does reach the canary: the
    # guard, not the page, stopped it above. WebRTC still sends no UDP.
    connections, paths, datagrams = seen_allowed
    assert REACHED <= paths and connections > 0 and datagrams == 0, seen_allowed
    assert "rendering/guard_refused" not in allowed.stats
    landed = {p["url"]: p for p in allowed.pages}[f"{origin}/moved"]
    assert (landed["final_url"], landed["status"]) == (f"{internal}/target", 200), landed
    hops = [(r["url"], r["target_url"], r["status"]) for r in allowed.other
            if "target_url" in r]
    assert hops == [(f"{origin}/moved", f"{internal}/target", 301)], allowed.other
