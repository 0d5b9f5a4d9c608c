"""One crawl per scope against the mock server: the crawled set is exactly what the scope says.

Host names: the mock server is also the crawl's HTTP proxy (`http_proxy`), so
that every name reaches it, and it renders each page for the name it was
asked under (its links are relative, or written with the `Host` header's
origin). A tricky site also links to `http://external.invalid/page/N`: the
bare name of `www.external.invalid`'s site, and a sibling of
`shop.external.invalid` under one registered domain. The expected sets come
from the generator's data (`tests.sitegen`), never from a crawl; the server's
request log tells which names were asked.

The two-worker crawl runs on the Redis frontier with loopback names that
differ (`localhost` redirecting to `127.0.0.1`). (`tests/websites.py`, named
HTTPS sites on loopback, had not landed when these were written; its `World`
would let the one-crawl-per-scope tests run on real-looking sites too.)
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest
import redis

from tests.crawlrun import run_crawl
from tests.sitegen import EXTERNAL_ORIGIN, Site
from tests.test_frontier_queue import BlockingFrontier

SITE = "crawler.spiders.site.SiteSpider"
LOOPBACK = {"CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}


def through_proxy(server) -> dict[str, str]:
    """The environment that sends every http:// request of a crawl to `server`."""
    return {"http_proxy": server.origin, "HTTP_PROXY": server.origin, "no_proxy": "",
            "NO_PROXY": ""}


def final_urls(result) -> set[str]:
    return {p["final_url"] for p in result.pages}


def names_asked(server) -> set[str]:
    return {r.host for r in server.requests()}


def external_pages(site: Site) -> set[str]:
    """The tricky site's links to `http://external.invalid/page/N` (404s there)."""
    return {target for _, target in site.link_set("http://x") if
            target.startswith(EXTERNAL_ORIGIN)}


def reachable_in_prefix(site: Site, origin: str, start: str) -> set[str]:
    """What a crawl from `start` reaches following links that start with `start` (a path)."""
    seen, todo = {start}, [start]
    while todo:
        for link in site.pages[todo.pop()].links:
            target = link.target
            if (target is None or link.nofollow or not target.startswith(start)
                    or target in seen or target not in site.pages):
                continue
            seen.add(target)
            if site.pages[target].content_type.startswith("text/html"):
                todo.append(target)
    return {origin + path for path in seen}


def crawl(server, start: str, scope: str, **args: str):
    result = run_crawl(SITE, {"start_urls": json.dumps([start]), "scope": scope, **args},
                       LOOPBACK, env=through_proxy(server), timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    return result


def test_site_follows_a_start_url_that_moved_and_host_does_not(mock_server):
    server = mock_server(pages=120, seed=31, tricky=True)
    moved = "http://old.invalid/redirect?status=301&to=" + quote("http://www.external.invalid/p/0")
    www = "http://www.external.invalid"
    result = crawl(server, moved, "site")
    # The site of the redirect's target: its pages, and the bare name's pages it links to.
    assert final_urls(result) == server.site.page_urls(www) | external_pages(server.site)
    assert names_asked(server) == {"old.invalid", "www.external.invalid", "external.invalid"}
    assert result.stats["crawlgraph/scope/learned"] == 1
    assert "crawlgraph/offsite/site" not in result.stats  # every link is on the site

    server = mock_server(pages=120, seed=31, tricky=True)
    result = crawl(server, moved, "host")
    assert final_urls(result) == {www + "/p/0"}  # today's default: one page, then offsite
    assert names_asked(server) == {"old.invalid", "www.external.invalid"}
    assert result.stats["crawlgraph/offsite/host"] > 0


def test_domain_takes_the_registered_domain_and_site_only_the_host(mock_server):
    server = mock_server(pages=120, seed=32, tricky=True)
    shop = "http://shop.external.invalid"
    result = crawl(server, shop + "/p/0", "domain")
    assert final_urls(result) == server.site.page_urls(shop) | external_pages(server.site)
    assert names_asked(server) == {"shop.external.invalid", "external.invalid"}

    server = mock_server(pages=120, seed=32, tricky=True)
    result = crawl(server, shop + "/p/0", "site")
    assert final_urls(result) == server.site.page_urls(shop)
    assert names_asked(server) == {"shop.external.invalid"}
    assert result.stats["crawlgraph/offsite/site"] == len(external_pages(server.site))


def test_prefix_takes_the_urls_that_start_with_a_start_url(mock_server):
    server = mock_server(pages=200, seed=33, tricky=True)
    www = "http://www.external.invalid"
    result = crawl(server, www + "/p/1", "prefix")
    expected = reachable_in_prefix(server.site, www, "/p/1")
    assert {www + "/p/1", www + "/p/10", www + "/p/100"} <= expected  # /p/1 is a prefix
    assert final_urls(result) == expected
    assert names_asked(server) == {"www.external.invalid"}
    assert result.stats["crawlgraph/offsite/prefix"] > 0


def test_two_workers_share_the_host_one_of_them_learned(mock_server, redis_url):
    """Worker A fetches the start URL, which redirects to another host, and learns it;
    worker B, which never saw that redirect, is then handed a page of that host and must
    follow its links. Sequential by construction: B starts once A has finished."""
    server = mock_server(pages=25, seed=34, links_per_page=2)
    port = server.port
    start = f"http://localhost:{port}/redirect?status=301&to=" + quote(server.url("/p/0"))
    job = str(uuid.uuid4())
    settings = {**LOOPBACK, "SCHEDULER": "crawler.frontier.scheduler.RedisScheduler",
                "CRAWLGRAPH_REDIS_URL": redis_url}
    args = {"job_id": job, "start_urls": json.dumps([start]), "scope": "site"}
    frontier = BlockingFrontier(redis_url, job)
    frontier.seed([start])

    a = run_crawl(SITE, {**args, "max_depth": "0"}, settings)
    assert a.reason == "finished", a.log[-3000:]
    assert final_urls(a) == {server.url("/p/0")}
    assert a.stats["crawlgraph/scope/learned"] == 1
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.smembers(f"crawlgraph:{job}:scope") == {server.url("/p/0").encode()}
    finally:
        client.close()

    frontier.seed([server.url("/p/1")])  # the frontier hands B a page of the learned host
    b = run_crawl(SITE, args, settings)
    assert b.reason == "finished", b.log[-3000:]
    assert final_urls(b) == server.site.page_urls(server.origin) - {server.url("/p/0")}
    assert b.stats["crawlgraph/scope/adopted"] == 1
    assert "crawlgraph/scope/learned" not in b.stats
    assert "crawlgraph/offsite" not in b.stats


class RecordingClient:
    """Stands in for the API client: keeps the bodies the command posts."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def call(self, method: str, path: str, json: dict | None = None, **kw: object) -> dict:
        self.bodies.append(json or {})
        return {"id": "0f4e7d1c-0000-4000-8000-000000000001", "spider": "site", "workers": 1}

    def close(self) -> None:
        pass


@pytest.mark.parametrize("command", ["crawl", "crawl-to-graph"])
def test_the_command_line_passes_the_scope(monkeypatch, capsys, command):
    import cli.crawl
    import cli.jobs
    from cli.main import main

    client = RecordingClient()
    for module in (cli.jobs, cli.crawl):
        monkeypatch.setattr(module, "client_for", lambda args: client)
    monkeypatch.setattr(cli.crawl, "watch", lambda *a, **kw: 1)  # stop after submitting
    main([command, "--scope", "prefix", "https://example.org/blog/"])
    main([command, "https://example.org/"])
    assert [body.get("scope") for body in client.bodies] == ["prefix", None]  # None: the API's
    with pytest.raises(SystemExit):
        main([command, "--scope", "origin", "https://example.org/"])
    assert "invalid choice: 'origin'" in capsys.readouterr().err
