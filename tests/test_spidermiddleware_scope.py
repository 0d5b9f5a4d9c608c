"""ScopeMiddleware: the site, host, domain and prefix scopes, allowed_domains, include/exclude.

The scope function is checked property by property on generated URLs (hosts,
ports, schemes, www variants, subdomains, public suffixes such as `co.uk`,
prefixes); the middleware on a kit crawler, with two workers sharing what they
learned through an in-memory stand-in for the job's Redis set. The crawls are
in `tests/test_scope_crawl.py`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy.exceptions import NotConfigured
from scrapy.http import Request

from core.domains import registered_domain
from crawler.scope import Scope
from crawler.spidermiddlewares.scope import ScopeMiddleware
from crawler.spidermiddlewares.scopeshare import RedisScope
from crawler.spiders.site import SiteSpider
from crawler.urls import canonicalize
from tests.spiders.kit import PlainSpider, kit_crawler, page, scrape, start


def test_scope_by_host_and_port_or_domain():
    spider = Scope.of(SiteSpider(start_urls="http://127.0.0.1:8801/").args)
    assert "http://127.0.0.1:8801/a" in spider
    assert "http://127.0.0.1:8802/a" not in spider
    domains = Scope.of(SiteSpider(start_urls="http://www.example.org/",
                                  allowed_domains='["example.org", "127.0.0.1:9"]').args)
    assert "https://shop.example.org/x" in domains
    assert "http://127.0.0.1:9/x" in domains
    assert "http://127.0.0.1:10/x" not in domains
    assert "http://badexample.org/" not in domains
    assert "mailto:x@example.org" not in domains


def test_include_and_exclude_patterns():
    scope = Scope(["http://a.example/"], include=[r"/p/\d+$"], exclude=[r"/p/5$"])
    assert "http://a.example/p/1" in scope
    assert "http://a.example/p/5" not in scope
    assert "http://a.example/about" not in scope


def test_requests_leaving_the_scope_are_dropped_and_counted():
    crawler = kit_crawler({"start_urls": "http://a.example/"})
    response = page("http://a.example/", meta={"depth": 0})
    out = scrape(crawler, response, [Request("http://a.example/in"),
                                     Request("http://b.example/out"),
                                     Request("http://a.example:8080/other-port")])
    assert [r.url for r in out if isinstance(r, Request)] == ["http://a.example/in"]
    assert crawler.stats.get_value("crawlgraph/offsite") == 2


def test_start_requests_define_the_scope_and_pass():
    crawler = kit_crawler({"start_urls": '["http://a.example/", "http://b.example/"]',
                           "allowed_domains": "a.example"})
    assert [r.url for r in start(crawler)] == ["http://a.example/", "http://b.example/"]


def test_switched_off_and_spiders_outside_the_kit():
    with pytest.raises(NotConfigured, match="CRAWLGRAPH_SCOPE_ENABLED"):
        ScopeMiddleware.from_crawler(kit_crawler({"start_urls": "http://a.example/"},
                                                 {"CRAWLGRAPH_SCOPE_ENABLED": False}))
    with pytest.raises(NotConfigured):
        ScopeMiddleware.from_crawler(kit_crawler({"start_urls": "http://a.example/"},
                                                 spidercls=PlainSpider))


# --- the scope function, property by property ---------------------------------
# Hosts are built from parts, so that each test knows a host's registered domain
# and its www-less name by construction, not from the code under test.
SUFFIXES = ["com", "org", "co.uk", "org.uk", "com.au", "test", "github.io", "blogspot.com"]
KINDS = ["site", "host", "domain", "prefix"]
_label = (st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=7)
          | st.sampled_from(["a-b", "x-1-y"])).filter(lambda label: label != "www")


@dataclass(frozen=True)
class Host:
    """`[www.][subs.]label.suffix`, or an IPv4 address (`label` holds it, no suffix)."""

    label: str
    suffix: str = ""
    subs: tuple[str, ...] = ()
    www: bool = False

    @property
    def name(self) -> str:
        if not self.suffix:
            return self.label
        return ".".join((("www",) if self.www else ()) + self.subs + (self.label, self.suffix))

    @property
    def domain(self) -> str:
        return f"{self.label}.{self.suffix}" if self.suffix else self.label

    @property
    def bare(self) -> str:
        """The name without its `www.`."""
        return self.name[4:] if self.www else self.name


# A few labels and suffixes only, so that generated URLs often share a host or a domain.
_names = st.builds(Host, st.sampled_from(["example", "news", "a1"]) | _label,
                   st.sampled_from(SUFFIXES),
                   st.lists(st.sampled_from(["shop", "blog", "m"]) | _label, max_size=2)
                   .map(tuple), st.booleans())
_ips = st.sampled_from(["127.0.0.1", "10.1.2.3", "192.0.2.7"]).map(Host)
hosts = _names | _ips


@dataclass(frozen=True)
class Url:
    scheme: str
    host: Host
    port: int | None  # as written; None: the scheme's default
    path: str

    @cached_property
    def text(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return canonicalize(f"{self.scheme}://{self.host.name}{port}{self.path}")

    @property
    def effective_port(self) -> int:
        return self.port or {"http": 80, "https": 443}[self.scheme]

    @property
    def rest(self) -> str:
        """Path and query of the canonical URL."""
        return "/" + self.text.split("/", 3)[3]


_segment = st.sampled_from(["blog", "blogroll", "p", "2024", "a b", "x.html", ""]) | _label
paths = st.builds(lambda segs, slash, query: "/" + "/".join(segs) + slash + query,
                  st.lists(_segment, max_size=3), st.sampled_from(["", "/"]),
                  st.sampled_from(["", "?page=2", "?b=1&a=2"]))
urls = st.builds(Url, st.sampled_from(["http", "https"]), hosts,
                 st.sampled_from([None, 80, 443, 8080]) | st.integers(1, 65535), paths)


def _scope(kind: str, *start: Url, **kw) -> Scope:
    return Scope([u.text for u in start], kind=kind, **kw)


def _same_site(u: Url, s: Url) -> bool:
    return u.host.bare == s.host.bare and u.effective_port in {80, 443, s.effective_port}


def _same_site_origin(u: Url, s: Url) -> bool:
    """Prefixes are widened as sites are (a www-variant or default port of the start)."""
    return _same_site(u, s)


EXPECTED: dict[str, Callable[[Url, Url], bool]] = {
    "host": lambda u, s: (u.host.name, u.effective_port) == (s.host.name, s.effective_port),
    "site": _same_site,
    "domain": lambda u, s: u.host.domain == s.host.domain,
    "prefix": lambda u, s: _same_site_origin(u, s) and u.rest.startswith(s.rest),
}

_hyp = settings(deadline=None, max_examples=200)


def test_generated_suffixes_make_registered_domains():
    # The strategies' premise: `label.suffix` is a registered domain for these suffixes.
    for suffix in SUFFIXES:
        assert registered_domain(f"shop.x.{suffix}") == f"x.{suffix}"


@_hyp
@given(st.sampled_from(KINDS), urls, urls)
def test_a_url_is_in_scope_exactly_as_the_scope_says(kind, start, url):
    assert (url.text in _scope(kind, start)) == EXPECTED[kind](url, start)


@_hyp
@given(st.sampled_from(KINDS), st.lists(urls, min_size=1, max_size=4), urls)
def test_several_start_urls_are_the_union_of_their_scopes(kind, starts, url):
    assert (url.text in _scope(kind, *starts)) == any(EXPECTED[kind](url, s) for s in starts)


@_hyp
@given(urls, urls)
def test_host_within_site_within_domain_and_prefix_within_site(start, url):
    inside = {kind: url.text in _scope(kind, start) for kind in KINDS}
    assert not inside["host"] or inside["site"]
    assert not inside["site"] or inside["domain"]
    assert not inside["prefix"] or inside["site"]


@_hyp
@given(urls, st.sampled_from(["http", "https"]), st.booleans(), st.sampled_from([None, 80, 443]),
       st.lists(_segment, max_size=2))
def test_a_site_and_a_prefix_take_their_www_and_scheme_variants(start, scheme, www, port,
                                                                more):
    host = start.host if not start.host.suffix else Host(
        start.host.label, start.host.suffix, start.host.subs, www)
    below = start.text.split("?")[0].rstrip("/") + "/" + "/".join(more)
    variant = Url(scheme, host, port, "/" + below.split("/", 3)[3])
    assert variant.text in _scope("site", start)
    assert variant.text in _scope("domain", start)
    assert variant.text in _scope("prefix", Url(start.scheme, start.host, start.port,
                                                start.path.split("?")[0].rstrip("/") + "/"))


@_hyp
@given(hosts, st.sampled_from(["shop", "m", "www.blog"]), st.sampled_from(SUFFIXES),
       st.sampled_from([None, 8080]))
def test_a_domain_takes_every_subdomain_and_no_sibling_under_its_suffix(host, sub, suffix,
                                                                       port):
    if not host.suffix:
        return
    start = Url("https", host, None, "/")
    scope = _scope("domain", start)
    assert Url("http", Host(host.label, host.suffix, (sub,)), port, "/x").text in scope
    assert Url("http", Host(host.label, host.suffix), port, "/x").text in scope
    sibling = Host(host.label + "x", host.suffix)
    assert Url("https", sibling, None, "/").text not in scope
    if suffix != host.suffix:
        assert Url("https", Host(host.label, suffix), None, "/").text not in scope


@_hyp
@given(st.sampled_from(KINDS), urls, urls, urls)
def test_a_learned_redirect_target_counts_as_a_start_url_except_under_host(kind, start,
                                                                          target, url):
    scope = _scope(kind, start)
    before = url.text in scope
    grew = scope.learn(target.text)
    if kind == "host":
        assert not grew and (url.text in scope) == before
    else:
        assert grew == (not EXPECTED[kind](target, start))
        assert (url.text in scope) == (EXPECTED[kind](url, start) or EXPECTED[kind](url, target))


@_hyp
@given(st.sampled_from(KINDS), urls, urls, st.sampled_from(["example.com", "co.uk", "127.0.0.1",
                                                           "example.org:8080"]))
def test_allowed_domains_are_the_host_part_and_narrow_a_prefix(kind, start, url, allowed):
    scope = _scope(kind, start, allowed_domains=[allowed])
    host, port = url.host.name, url.effective_port
    on_allowed = host == allowed or host.endswith("." + allowed) or f"{host}:{port}" == allowed
    expected = on_allowed and (kind != "prefix" or EXPECTED["prefix"](url, start))
    assert (url.text in scope) == expected
    assert not scope.learn(url.text) or kind == "prefix"


@_hyp
@given(st.sampled_from(KINDS), urls, urls, st.sampled_from([r"/p/", r"\?", r"blog$"]),
       st.sampled_from([r"2024", r"\.html"]))
def test_include_and_exclude_apply_on_top_of_every_scope(kind, start, url, include, exclude):
    plain = url.text in _scope(kind, start)
    scope = _scope(kind, start, include=[include], exclude=[exclude])
    expected = (plain and re.search(include, url.text) is not None
                and re.search(exclude, url.text) is None)
    assert (url.text in scope) == expected


@_hyp
@given(st.sampled_from(KINDS), urls,
       st.sampled_from(["mailto:a@example.com", "ftp://example.com/", "javascript:x()",
                        "http://example.com:99999/", "http://:80/", "http://[::1/", "",
                        "//example.com/", "data:text/html,hi"]))
def test_other_schemes_and_broken_urls_are_never_in_scope(kind, start, url):
    scope = _scope(kind, start, allowed_domains=["example.com"])
    assert url not in scope
    assert url not in _scope(kind, start)
    assert not _scope(kind, start).learn(url)


def test_site_and_domain_of_hosts_without_www():
    ip = Scope(["http://127.0.0.1:8801/"])
    assert "http://127.0.0.1/" in ip and "https://127.0.0.1/" in ip
    assert "http://www.127.0.0.1:8801/" not in ip
    suffix = Scope(["http://co.uk/"])  # a public suffix is no site with a www
    assert "https://co.uk/" in suffix and "http://www.co.uk/" not in suffix
    kept = Scope(["http://www.co.uk/"])  # its www is not stripped to the suffix
    assert "http://www.co.uk/a" in kept and "http://co.uk/a" not in kept
    assert "http://a.co.uk/" not in Scope(["http://co.uk/"], kind="domain")
    pages = Scope(["https://user.github.io/"], kind="domain")
    assert "http://blog.user.github.io/" in pages and "https://other.github.io/" not in pages
    v6 = Scope(["http://[::1]:8080/"], kind="domain")
    assert "http://[::1]:9/" in v6 and "http://127.0.0.1:8080/" not in v6


# --- learning a start URL's redirect target, with two workers -----------------
class MemorySet:
    """Stands in for the job's Redis set (`RedisScope`): what the workers learned."""

    def __init__(self) -> None:
        self.urls: set[str] = set()

    async def add(self, url: str) -> None:
        self.urls.add(url)

    async def count(self) -> int:
        return len(self.urls)

    async def members(self) -> set[str]:
        return set(self.urls)

    async def touch(self) -> None:
        pass

    async def close(self) -> None:
        pass


START = "http://old.example/"


def worker(shared: MemorySet | None, **args: str) -> ScopeMiddleware:
    """One worker's scope middleware (the job's start URL: `START`)."""
    crawler = kit_crawler({"start_urls": START, **args})
    return ScopeMiddleware(crawler, Scope.of(crawler.spider.args), shared)


def through(mw: ScopeMiddleware, response, *urls: str) -> list[str]:
    """The URLs of the requests the middleware lets out of `response`'s output."""
    async def output():
        for url in urls:
            yield Request(url)

    async def run() -> list[str]:
        return [r.url async for r in mw.process_spider_output(response, output())]

    return asyncio.run(run())


def redirected_start(url: str = "https://new.example/", first: str = START):
    return page(url, meta={"depth": 0, "redirect_urls": [first]})


def test_a_start_url_redirect_target_joins_the_site_before_its_links_are_judged():
    shared = MemorySet()
    a = worker(shared)
    assert through(a, redirected_start(), "https://new.example/a", "http://www.new.example/b",
                   "https://other.example/") == ["https://new.example/a",
                                                 "http://www.new.example/b"]
    assert shared.urls == {"https://new.example/"}
    stats = a.crawler.stats
    assert stats.get_value("crawlgraph/scope/learned") == 1
    assert stats.get_value("crawlgraph/offsite") == stats.get_value("crawlgraph/offsite/site") == 1


def test_another_worker_adopts_what_one_learned_also_on_pages_of_other_hosts():
    shared = MemorySet()
    through(worker(shared), redirected_start())
    b = worker(shared)
    # B judges a page of the old host linking to the new one: it was never handed a
    # page of new.example, so only the shared set can tell it.
    assert through(b, page("http://old.example/x", meta={"depth": 1}), "https://new.example/c",
                   "https://other.example/") == ["https://new.example/c"]
    assert through(b, page("https://new.example/c", meta={"depth": 2}),
                   "https://new.example/d") == ["https://new.example/d"]
    assert b.crawler.stats.get_value("crawlgraph/scope/adopted") == 1
    assert b.crawler.stats.get_value("crawlgraph/scope/learned") is None
    # Alone (no shared set), a worker that did not see the redirect drops the new host.
    alone = worker(None)
    assert through(alone, page("https://new.example/c", meta={"depth": 2}),
                   "https://new.example/d") == []


def test_only_a_start_url_redirect_is_learned_and_never_under_host():
    shared = MemorySet()
    mw = worker(shared)
    # A redirect of a followed link (depth 1), and a depth-0 request that is no start URL.
    through(mw, page("https://elsewhere.example/", meta={"depth": 1, "redirect_urls": [
        "http://old.example/go"]}))
    through(mw, redirected_start("https://elsewhere.example/", first="http://old.example/go"))
    # A redirect within the site (http to https, apex to www) adds nothing.
    through(mw, redirected_start("https://www.old.example/"))
    assert shared.urls == set() and mw.scope.learned == []
    host = worker(MemorySet(), scope="host")
    assert through(host, redirected_start(), "https://new.example/a") == []
    assert host.crawler.stats.get_value("crawlgraph/offsite/host") == 1


@pytest.mark.parametrize(("kind", "inside", "outside"), [
    ("domain", "https://shop.new.example/x", "https://other.example/"),
    ("prefix", "https://www.new.example/blog/x", "https://new.example/about"),
])
def test_domain_and_prefix_learn_in_their_own_terms(kind, inside, outside):
    mw = worker(MemorySet(), scope=kind)
    assert through(mw, redirected_start("https://new.example/blog/"), inside, outside) == [
        inside]


def test_a_shared_set_only_for_jobs_that_can_learn():
    job = {"job_id": "8d1f6f8e-9f6a-4c3e-9a57-2f0b8f3f0c11"}
    redis = {"CRAWLGRAPH_REDIS_URL": "redis://127.0.0.1:9/0"}

    def shared(args: dict, settings: dict | None = None):
        return ScopeMiddleware.from_crawler(kit_crawler({"start_urls": START, **args},
                                                        settings)).shared

    mw_shared = shared(job, redis)
    assert isinstance(mw_shared, RedisScope)
    assert mw_shared.key == f"crawlgraph:{job['job_id']}:scope"
    asyncio.run(mw_shared.close())
    assert shared(job) is None  # no Redis: a local crawl
    assert shared({}, redis) is None  # no job
    assert shared({**job, "scope": "host"}, redis) is None
    assert shared({**job, "allowed_domains": "old.example"}, redis) is None
