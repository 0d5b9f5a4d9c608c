"""One crawl per scope on named sites: the crawled set is exactly what the scope says.

The sites are `tests.websites` (HTTPS on loopback under their names, with the
redirects real sites have: the apex and `http://` 301 to `https://www.`, a
short-link host `go.`, trailing slashes), two of them linking to each other.
What a crawl must fetch comes from the world's own data: the pages reachable
from the start following the links the scope takes (`World.reachable`, with
the scope's rule written out here, independently of the scope function), and
every URL of those links' redirect chains; the server's request log is what
was fetched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import pytest
import redis

from tests.crawlrun import run_crawl
from tests.test_frontier_queue import BlockingFrontier
from tests.websites import (
    World,
    websites_fixture,  # noqa: F401 - the `websites` fixture
)

SITE = "crawler.spiders.site.SiteSpider"
HOME = "https://www.example.test/"
SITES = ("example.test", "other.test")


def final_urls(result) -> set[str]:
    return {p["final_url"] for p in result.pages}


def on(*hosts: str) -> Callable[[str], bool]:
    return lambda url: urlsplit(url).hostname in hosts


def chain(world: World, url: str) -> set[str]:
    """A URL and every URL its redirects lead to."""
    urls = {url}
    while (hop := world.redirect(url)) is not None:
        url = urljoin(url, hop[1])
        urls.add(url)
    return urls


def must_fetch(world: World, start: str, in_scope: Callable[[str], bool]) -> set[str]:
    """Every URL a crawl from `start` requests: the start, the links the scope takes
    from the pages it reaches, and their redirect chains (redirects are not judged)."""
    urls = chain(world, start)
    for page in world.reachable(start, in_scope):
        for link in world.pages[page].links:
            if in_scope(link.target):
                urls |= chain(world, link.target)
    return urls


def crawl(sites, start: str, scope: str, in_scope: Callable[[str], bool], **args: str):
    """Crawl from `start` under `scope`; check pages and fetches against `in_scope`."""
    result = run_crawl(SITE, {"start_urls": json.dumps([start]), "scope": scope, **args},
                       sites.settings, timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    world = sites.world
    assert final_urls(result) == world.reachable(start, in_scope)
    fetched = {r.url for r in sites.requests() if r.path != "/robots.txt"}
    assert fetched == must_fetch(world, start, in_scope)
    return result


def test_site_follows_the_apex_www_and_http_and_a_start_url_that_moved(websites):
    sites = websites(sites=SITES, pages=12, seed=41)
    result = crawl(sites, "http://example.test/", "site", on("example.test", "www.example.test"))
    assert final_urls(result) == sites.world.page_urls("example.test")
    assert result.stats["crawlgraph/offsite/site"] > 0  # go.example.test and other.test
    assert "crawlgraph/scope/learned" not in result.stats  # www is the site already

    # A short link as the start URL: where it lands (www.example.test) joins the scope.
    sites = websites(sites=SITES, pages=12, seed=41)
    result = crawl(sites, "https://go.example.test/3", "site",
                   on("go.example.test", "example.test", "www.example.test"))
    assert final_urls(result) == sites.world.page_urls("example.test")
    assert result.stats["crawlgraph/scope/learned"] == 1


def test_host_keeps_to_the_start_origin_so_a_redirected_start_crawls_one_page(websites):
    sites = websites(sites=SITES, pages=12, seed=42)
    start = "http://example.test/"
    result = crawl(sites, start, "host", lambda url: url.startswith(start))
    assert final_urls(result) == {HOME}  # the old default's one page, then "finished"
    assert result.stats["crawlgraph/offsite/host"] > 0


def test_domain_takes_every_subdomain_and_not_the_other_site(websites):
    sites = websites(sites=SITES, pages=12, seed=43)
    result = crawl(sites, HOME, "domain",
                   lambda url: (urlsplit(url).hostname or "").endswith("example.test"))
    assert final_urls(result) == sites.world.page_urls("example.test")
    assert {r.host for r in sites.requests()} == {"example.test", "www.example.test",
                                                  "go.example.test"}
    assert result.stats["crawlgraph/offsite/domain"] > 0  # http://other.test/


def test_prefix_takes_the_urls_that_start_with_a_start_url(websites):
    sites = websites(sites=SITES, pages=12, seed=44)
    docs = HOME + "docs/"

    def in_docs(url: str) -> bool:
        parts = urlsplit(url)
        return parts.hostname in ("example.test", "www.example.test") and \
            parts.path.startswith("/docs/")

    result = crawl(sites, docs, "prefix", in_docs)
    assert final_urls(result) == {u for u in sites.world.page_urls("example.test")
                                  if u.startswith(docs)}
    assert result.stats["crawlgraph/offsite/prefix"] > 0


def test_two_workers_share_the_host_one_of_them_learned(websites, redis_url):
    """Worker A fetches the start URL, a short link landing on www.example.test, and
    learns that host; worker B, which never saw that redirect, is then handed a page of
    it and must follow its links. Sequential by construction: B starts once A is done."""
    sites = websites(sites=SITES, pages=12, seed=45)
    world = sites.world
    start, landed = "https://go.example.test/3", world.final_url("https://go.example.test/3")
    job = str(uuid.uuid4())
    settings = {**sites.settings, "SCHEDULER": "crawler.frontier.scheduler.RedisScheduler",
                "CRAWLGRAPH_REDIS_URL": redis_url}
    args = {"job_id": job, "start_urls": json.dumps([start]), "scope": "site"}
    frontier = BlockingFrontier(redis_url, job)
    frontier.seed([start])

    a = run_crawl(SITE, {**args, "max_depth": "0"}, settings)
    assert a.reason == "finished", a.log[-3000:]
    assert final_urls(a) == {landed}
    assert a.stats["crawlgraph/scope/learned"] == 1
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.smembers(f"crawlgraph:{job}:scope") == {landed.encode()}
    finally:
        client.close()

    frontier.seed([HOME + "docs/"])  # the frontier hands B a page of the learned host
    b = run_crawl(SITE, args, settings)
    assert b.reason == "finished", b.log[-3000:]
    in_scope = on("go.example.test", "example.test", "www.example.test")
    assert final_urls(b) == world.reachable(HOME + "docs/", in_scope) - {landed}
    assert final_urls(b) | {landed} == world.page_urls("example.test")
    assert b.stats["crawlgraph/scope/adopted"] == 1
    assert "crawlgraph/scope/learned" not in b.stats
    assert b.stats["crawlgraph/offsite"] == b.stats["crawlgraph/offsite/site"]  # other.test


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
