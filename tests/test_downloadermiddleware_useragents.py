"""User-agent rotation as the server sees it."""

from __future__ import annotations

import collections

import pytest

from crawler.middlewares.useragents import DEFAULT_PROFILES, UserAgentRotationMiddleware
from tests.crawlrun import run_crawl

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def test_user_agents_vary_with_matching_headers(mock_server):
    server = mock_server(pages=30, seed=5)
    run_crawl(SITE, {"start_urls": server.start_url}, LOOPBACK)
    log = [r for r in server.requests() if r.path.startswith("/p/")]
    agents = collections.Counter(r.user_agent for r in log)
    assert len(agents) >= 3
    profiles = {p["User-Agent"]: p for p in DEFAULT_PROFILES}
    for r in log:
        profile = profiles[r.user_agent]
        assert r.headers["accept"] == profile["Accept"]
        assert r.headers["accept-language"] == profile["Accept-Language"]
        assert "gzip" in r.headers["accept-encoding"]


def test_sticky_per_host_and_configured_pool(mock_server):
    a, b = mock_server(pages=10), mock_server(pages=10)
    pool = ["TestBot-A/1.0", {"User-Agent": "TestBot-B/2.0", "Accept-Language": "nl"},
            "TestBot-C/3.0"]
    run_crawl(SITE, {"start_urls": f'["{a.start_url}", "{b.start_url}"]'},
              {**LOOPBACK, "CRAWLGRAPH_USER_AGENT_MODE": "host", "CRAWLGRAPH_USER_AGENTS": pool})
    agents_a = {r.user_agent for r in a.requests()}
    agents_b = {r.user_agent for r in b.requests()}
    assert len(agents_a) == 1 and len(agents_b) == 1
    assert agents_a | agents_b <= {"TestBot-A/1.0", "TestBot-B/2.0", "TestBot-C/3.0"}
    nl = [r for r in a.requests() + b.requests() if r.user_agent == "TestBot-B/2.0"]
    assert all(r.headers["accept-language"] == "nl" for r in nl)


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="CRAWLGRAPH_USER_AGENT_MODE"):
        UserAgentRotationMiddleware(DEFAULT_PROFILES, "sometimes")
