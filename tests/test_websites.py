"""Crawls of named sites on loopback: CRAWLGRAPH_RESOLVE, HTTPS with a test CA, redirects.

The sites, their ground truth and the fixture are `tests.websites`.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from core.errors import ConfigError
from crawler.tls import BundlePolicy
from tests.crawlrun import run_crawl
from tests.websites import (
    OTHER_CA,
    WRONG_NAME,
    generate_world,
    websites_fixture,  # noqa: F401 - the `websites` fixture
)

SITE = "crawler.spiders.site.SiteSpider"
HOME = "https://www.example.test/"


def final_urls(result) -> set[str]:
    return {p["final_url"] for p in result.pages}


# ---------------------------------------------------------------- the ground truth
def test_the_world_redirects_as_real_sites_do():
    world = generate_world(pages=6)
    assert world.redirect("http://example.test/") == (301, HOME)
    assert world.redirect("https://example.test/docs/page-2") == (
        301, "https://www.example.test/docs/page-2")
    assert world.redirect("http://www.example.test/blog/") == (
        301, "https://www.example.test/blog/")
    assert world.redirect("https://www.example.test/blog") == (301, "/blog/")
    assert world.redirect("https://www.example.test/docs/page-2/") == (301, "/docs/page-2")
    # A chain across hosts and schemes: www -> go -> the apex over http -> www.
    assert world.redirect("https://www.example.test/moved/3") == (
        308, "https://go.example.test/3")
    assert world.redirect("https://go.example.test/3") == (
        302, "http://example.test/blog/page-3")
    assert world.final_url("https://www.example.test/moved/3") == \
        "https://www.example.test/blog/page-3"
    assert world.redirect(HOME) is None and world.redirect("https://go.example.test/99") is None
    assert world.page_urls("example.test") == {HOME, *(
        f"https://www.example.test/{s}/" for s in ("docs", "blog")), *(
        f"https://www.example.test/{'docs' if i % 2 == 0 else 'blog'}/page-{i}"
        for i in range(6))}


def test_the_true_link_graph_folds_every_redirect():
    world = generate_world(pages=30, seed=3)
    links = world.link_set("example.test")
    graph = world.link_graph("example.test")
    # The home page links to itself through the apex over http: a self-loop once folded.
    assert (HOME, "http://example.test/") in links and (HOME, HOME) in graph
    # Links were written every way, and every folded target is a page of the site.
    written = {t for _, t in links}
    assert any(t.startswith("http://example.test/") for t in written)
    assert any(t.startswith("https://example.test/") for t in written)
    assert any(t.startswith("https://go.example.test/") for t in written)
    assert any("/moved/" in t for t in written)
    assert any(t.endswith("/") and "/page-" in t for t in written)
    assert {t for _, t in graph} <= world.page_urls("example.test")
    assert len(graph) < len(links)
    # Every page is reachable within www.example.test alone, and from the apex.
    on_www = world.reachable("http://example.test/",
                             lambda u: urlsplit(u).netloc == "www.example.test")
    assert on_www == world.reachable(HOME) == world.page_urls("example.test")


def test_several_sites_link_to_each_other():
    world = generate_world(["a.test", "b.test", "c.test"], pages=4)
    assert ("https://www.a.test/docs/page-0", "http://b.test/") in world.link_set("a.test")
    assert ("https://www.c.test/docs/page-0", "https://www.a.test/") in world.link_graph()
    assert world.reachable("https://www.a.test/") == (
        world.page_urls("a.test") | world.page_urls("b.test") | world.page_urls("c.test"))
    assert set(world.names()) >= {"a.test", "www.b.test", "go.c.test", OTHER_CA, WRONG_NAME}


# ---------------------------------------------------------------- crawls
def test_a_crawl_of_the_https_site_by_name_verifies_and_finds_the_true_pages_and_links(
        websites):
    sites = websites(pages=12)
    world = sites.world
    result = run_crawl(SITE, {"start_urls": json.dumps([HOME]), "scope": "host"},
                       sites.settings)
    assert result.reason == "finished", result.log[-3000:]
    # Scoped to the host www.example.test:443: links through the apex, http:// and go.
    # are stored but not followed; every page is still reachable on www.
    in_scope = world.reachable(HOME, lambda u: urlsplit(u).netloc == "www.example.test")
    assert final_urls(result) == in_scope == world.page_urls("example.test")
    assert {p["status"] for p in result.pages} == {200}
    links = {(link["source_url"], link["target_url"]) for link in result.links}
    assert links == world.link_set("example.test")
    # Redirected pages end where the world says.
    moved = [p for p in result.pages if p["url"] != p["final_url"]]
    assert moved and all(world.final_url(p["url"]) == p["final_url"] for p in moved)
    # Every request kept the name: Host without a port, the same name in TLS SNI.
    seen = sites.requests()
    assert {r.url for r in seen} >= world.page_urls("example.test")
    assert all(r.sni == r.host for r in seen if r.scheme == "https")
    assert all(r.sni is None for r in seen if r.scheme == "http")
    assert all(":" not in r.host for r in seen)


def test_allowed_domains_follows_the_apex_http_and_short_links_across_schemes(websites):
    sites = websites(pages=12, seed=5)
    world = sites.world
    result = run_crawl(SITE, {"start_urls": "http://example.test/",
                              "allowed_domains": json.dumps(["example.test"])},
                       sites.settings)
    assert result.reason == "finished", result.log[-3000:]
    assert final_urls(result) == world.page_urls("example.test")
    moved = {p["url"]: p["final_url"] for p in result.pages if p["url"] != p["final_url"]}
    assert moved.get("http://example.test/") == HOME
    assert all(world.final_url(url) == final for url, final in moved.items())
    hosts = {(r.scheme, r.host) for r in sites.requests()}
    assert {("http", "example.test"), ("https", "example.test"),
            ("https", "go.example.test"), ("https", "www.example.test")} <= hosts
    assert all(r.sni is None for r in sites.requests() if r.scheme == "http")


def test_many_named_sites_share_one_port(websites):
    names = [f"site{k}.test" for k in range(12)]
    sites = websites(sites=names, pages=2)
    homes = [sites.world.home(name) for name in names]
    result = run_crawl(SITE, {"start_urls": json.dumps(homes)}, sites.settings)
    assert result.reason == "finished", result.log[-3000:]
    assert final_urls(result) == set().union(*(sites.world.page_urls(n) for n in names))
    https = [r for r in sites.requests() if r.scheme == "https"]
    assert {r.port for r in https} == {sites.https_port}
    assert {r.sni for r in https} >= {f"www.{name}" for name in names}


def test_a_certificate_not_from_the_bundle_fails_as_a_tls_error(websites):
    sites = websites(pages=2)
    starts = {"start_urls": json.dumps([f"https://{OTHER_CA}/", f"https://{WRONG_NAME}/"])}
    verified = run_crawl(SITE, starts, {**sites.settings, "RETRY_TIMES": 0})
    assert verified.reason == "finished", verified.log[-3000:]
    pages = {p["url"]: p for p in verified.pages}
    other, wrong = pages[f"https://{OTHER_CA}/"], pages[f"https://{WRONG_NAME}/"]
    assert other["status"] == 0 and other["error"].startswith("tls: ")
    assert "certificate verify failed" in other["error"]
    # The chain is good, the name is not the certificate's.
    assert wrong["status"] == 0 and wrong["error"].startswith("tls: ")
    assert "DNSMismatch" in wrong["error"]
    assert verified.stats["crawlgraph/error_cause/tls"] >= 1
    # Without a bundle, Scrapy's default stays: no certificate is checked.
    unverified = run_crawl(SITE, starts, {**sites.settings, "CRAWLGRAPH_CA_BUNDLE": ""})
    assert {p["url"]: p["status"] for p in unverified.pages} == {
        f"https://{OTHER_CA}/": 200, f"https://{WRONG_NAME}/": 200}


def test_a_bundle_that_is_not_one_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="CRAWLGRAPH_CA_BUNDLE .*missing.pem.* cannot be read"):
        BundlePolicy.from_file(tmp_path / "missing.pem")
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificate here\n")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        BundlePolicy.from_file(empty)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="does not parse"):
        BundlePolicy.from_file(broken)
