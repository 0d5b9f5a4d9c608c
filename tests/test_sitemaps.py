"""Sitemaps: `sitemaps: true` takes a site's URLs from its sitemaps too.

The parsing path (`crawler.sitemaps`: index and URL set, gzip, the
sitemaps.org limits, entities left unresolved), the `site` spider's sitemap
callback through the kit's spider middlewares (scope, depth, no Page for a
sitemap file), and one real crawl into PostgreSQL of a small site whose
robots.txt names a gzipped sitemap index that lists a page no page links to:
the page is crawled, stored as `discovered: sitemap`, and is a node of the
exported page graph without an in-edge, the graph's edges being the site's
true links and nothing more.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import networkx as nx
import psycopg
import pytest
from scrapy.http import Request, Response, XmlResponse

from crawler.items import Link, Page
from crawler.sitemaps import DISCOVERED_META, MAX_BYTES, MAX_URLS, SITEMAP_META, read_sitemap
from graphs import store
from graphs.build import BuildOptions, build_graph
from graphs.exports import write_export
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now
from graphs.read import read_links
from tests.crawlrun import run_crawl
from tests.graphdata import add_links, make_job, make_user
from tests.spiders.kit import kit_crawler, page, scrape

SITE = "crawler.spiders.site.SiteSpider"
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(urls: list[str]) -> bytes:
    entries = "".join(f"<url><loc>{escape(u)}</loc></url>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{entries}</urlset>'.encode()


def index(urls: list[str]) -> bytes:
    entries = "".join(f"<sitemap><loc>{escape(u)}</loc></sitemap>" for u in urls)
    return (f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {NS}>{entries}'
            f"</sitemapindex>").encode()


# --- parsing -----------------------------------------------------------------------------

def test_an_index_lists_sitemaps_and_a_urlset_lists_pages():
    got = read_sitemap(index(["/pages.xml", "https://a.test/more.xml.gz"]),
                       "https://a.test/sitemap.xml")
    assert (got.kind, got.urls, got.cut) == (
        "index", ["https://a.test/pages.xml", "https://a.test/more.xml.gz"], 0)
    got = read_sitemap(urlset(["https://a.test/", "https://A.test/x?b=2&a=1", "mailto:x@a.test",
                               ""]), "https://a.test/sitemap.xml")
    assert (got.kind, got.urls) == ("urlset", ["https://a.test/", "https://a.test/x?a=1&b=2"])


def test_a_gzipped_sitemap_is_read_and_what_is_not_one_is_nothing():
    got = read_sitemap(gzip.compress(urlset(["https://a.test/p"])), "https://a.test/s.xml.gz")
    assert (got.kind, got.urls) == ("urlset", ["https://a.test/p"])
    for body in (b"", b"<html><body>no sitemap</body></html>", b"\x1f\x8bnot gzip",
                 b"User-agent: *"):
        assert read_sitemap(body, "https://a.test/sitemap.xml").kind == "none"


def test_the_50000_urls_limit_cuts_and_counts():
    urls = [f"https://a.test/p{i}" for i in range(MAX_URLS + 3)]
    got = read_sitemap(urlset(urls), "https://a.test/sitemap.xml")
    assert got.urls == urls[:MAX_URLS] and got.cut == 3


def test_the_50_mb_limit_refuses_a_bigger_file_gzipped_or_not():
    padding = b" " * (MAX_BYTES + 1)
    bomb = gzip.compress(urlset(["https://a.test/p"]).replace(b"<url>", padding + b"<url>"), 9)
    assert len(bomb) < MAX_BYTES // 100  # a small download that unpacks past the limit
    got = read_sitemap(bomb, "https://a.test/s.xml.gz")
    assert got.too_big and got.urls == []
    plain = urlset(["https://a.test/p"])
    assert read_sitemap(plain, "https://a.test/s.xml", max_bytes=len(plain) - 1).too_big
    assert read_sitemap(plain, "https://a.test/s.xml", max_bytes=len(plain)).urls == [
        "https://a.test/p"]


def test_an_external_entity_is_not_resolved(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("https://secret.test/leaked")
    body = (f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file://{secret}">'
            f'<!ENTITY inner "https://a.test/expanded">]>'
            f"<urlset {NS}><url><loc>&xxe;</loc></url><url><loc>&inner;</loc></url>"
            f"<url><loc>https://a.test/ok</loc></url></urlset>").encode()
    got = read_sitemap(body, "https://a.test/sitemap.xml")
    assert got.urls == ["https://a.test/ok"]
    assert not any("secret" in u or "expanded" in u for u in got.urls)


# --- the spider's sitemap step through the kit's middlewares ----------------------------

def _sitemap_response(url: str, body: bytes, level: int = 1) -> Response:
    request = Request(url, meta={SITEMAP_META: level, "depth": 0})
    return XmlResponse(url, body=body, request=request,
                       headers={"Content-Type": "application/xml"})


def test_sitemap_urls_outside_the_scope_are_dropped_and_a_sitemap_is_no_page():
    crawler = kit_crawler({"start_urls": "https://a.test/", "sitemaps": "true",
                           "exclude": '["/private/"]', "max_depth": "1"})
    spider = crawler.spider
    response = _sitemap_response("https://a.test/sitemap.xml", urlset([
        "https://a.test/orphan", "https://www.a.test/w", "https://b.test/other",
        "https://a.test/private/x"]))
    out = scrape(crawler, response, list(spider.parse_sitemap(response)))
    assert not any(isinstance(o, Page | Link) for o in out)  # a sitemap file is no page
    requests = [o for o in out if isinstance(o, Request)]
    assert [r.url for r in requests] == ["https://a.test/orphan", "https://www.a.test/w"]
    assert all(r.meta[DISCOVERED_META] == "sitemap" and r.meta["depth"] == 1
               and r.callback == spider.parse for r in requests)
    assert crawler.stats.get_value("crawlgraph/sitemaps/urls") == 4
    assert crawler.stats.get_value("crawlgraph/offsite") == 2

    # An index's sitemaps start again at depth 0 (their pages are at depth 1), up to a nesting.
    response = _sitemap_response("https://a.test/sitemap.xml", index(["/s1.xml", "/s2.xml.gz"]))
    out = scrape(crawler, response, list(spider.parse_sitemap(response)))
    assert [(r.url, r.meta["depth"], r.meta[SITEMAP_META]) for r in out] == [
        ("https://a.test/s1.xml", 0, 2), ("https://a.test/s2.xml.gz", 0, 2)]
    deep = _sitemap_response("https://a.test/s9.xml", index(["/s10.xml"]), level=3)
    assert list(spider.parse_sitemap(deep)) == []
    assert crawler.stats.get_value("crawlgraph/sitemaps/too_nested") == 1


def test_a_start_page_asks_for_its_sitemaps_only_when_the_job_says_so():
    for flag, expected in (("false", []), ("true", ["https://a.test/sitemap.xml"])):
        crawler = kit_crawler({"start_urls": "https://a.test/", "sitemaps": flag})
        home = page("https://a.test/", '<a href="/a">a</a>', meta={"depth": 0})
        out = scrape(crawler, home, list(crawler.spider.parse(home)))
        asked = [o.url for o in out if isinstance(o, Request) and SITEMAP_META in o.meta]
        assert asked == expected
        deeper = page("https://a.test/a", "", meta={"depth": 1})
        assert list(crawler.spider.parse(deeper)) == []
        (stored,) = [o for o in out if isinstance(o, Page)]
        assert stored.discovered == "start"


def test_a_page_row_takes_only_the_known_ways():
    from datetime import UTC, datetime

    from crawler.pipelines.rows import PageRow, RowError, to_row

    def found(how):
        return Page(url="https://a.test/", final_url="https://a.test/", status=200,
                    fetched_at=datetime.now(UTC), discovered=how)

    discovered = PageRow.__struct_fields__.index("discovered")  # staging order
    assert to_row(found("sitemap")).values[discovered] == "sitemap"
    assert to_row(found(None)).values[discovered] is None
    with pytest.raises(RowError):
        to_row(found("guessed"))


# --- the read: each node's discovery, in both node reads ---------------------------------

def _add_found(conn: psycopg.Connection, job, pages: dict[str, str | None]) -> None:
    with conn.cursor() as cur, cur.copy(
            "COPY pages (job_id, url, final_url, status, fetched_at, discovered) FROM STDIN"
    ) as copy:
        for url, how in pages.items():
            final = url + "landed/" if url.endswith("/moved/") else url
            copy.write_row((job, url, final, 200, "2024-01-01T00:00:00Z", how))


@pytest.mark.parametrize("odd", [False, True])
def test_the_page_graph_says_how_each_page_was_found(database_url, odd):
    home, a, orphan, moved, old = ("https://x.test/", "https://x.test/a", "https://x.test/orphan",
                                   "https://x.test/moved/", "https://x.test/old")
    # A URL with a newline in it makes the read fall back to rows, which read the codes apart.
    out = "https://elsewhere.test/x\ny" if odd else "https://elsewhere.test/x"
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        job, other = make_job(conn, owner), make_job(conn, owner)
        _add_found(conn, job, {home: "start", a: "link", orphan: "sitemap", moved: "link",
                               old: None})
        _add_found(conn, other, {orphan: "link", a: "sitemap"})  # the first way of the two
        add_links(conn, job, [(home, a, 1, False), (a, moved, 1, False), (a, out, 1, False)])
    table = read_links(database_url, [job, other])
    assert ("read_nodes_rows" in table.timings) == odd
    g = build_graph(table, BuildOptions())
    assert dict(zip(g.vp.label, g.vp.discovered, strict=True)) == {
        home: "start", a: "link", orphan: "link", moved + "landed/": "link", old: "", out: ""}
    alone = build_graph(read_links(database_url, [job]), BuildOptions())
    assert dict(zip(alone.vp.label, alone.vp.discovered, strict=True))[orphan] == "sitemap"
    assert "discovered" not in build_graph(table, BuildOptions(level="host")).vp


# --- a real crawl: an orphan page reached through robots.txt and a gzipped index ---------

class _Site:
    """A small site as data; robots.txt names a gzipped index listing the orphan."""

    LINKS = {"/": ["/a", "/b"], "/a": ["/", "/b"], "/b": ["/a"], "/orphan": ["/a"]}

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        # Another port of the same address is another site: out of scope.
        self.offsite = f"http://127.0.0.1:{self.server.server_address[1] + 1}/elsewhere"
        o = self.origin
        self.files: dict[str, tuple[str, bytes]] = {
            "/robots.txt": ("text/plain",
                            f"User-agent: *\nAllow: /\nSitemap: {o}/maps/index.xml.gz\n".encode()),
            "/maps/index.xml.gz": ("application/gzip",
                                   gzip.compress(index([f"{o}/maps/pages.xml", "/maps/gone.xml"]))),
            "/maps/pages.xml": ("application/xml",
                                urlset([f"{o}/", f"{o}/a", f"{o}/orphan", self.offsite])),
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/sitemap.xml":  # a sitemap that redirects is no page either
                    self._send(301, "text/html", b"", {"Location": "/maps/index.xml.gz"})
                elif self.path in site.files:
                    self._send(200, *site.files[self.path])
                elif self.path in site.LINKS:
                    links = "".join(f'<a href="{h}">{h}</a>' for h in site.LINKS[self.path])
                    self._send(200, "text/html; charset=utf-8",
                               f"<html><body>{links}</body></html>".encode())
                else:
                    self._send(404, "text/html", b"no such page")

            def _send(self, status: int, ctype: str, body: bytes,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def pages(self) -> set[str]:
        return {self.origin + path for path in self.LINKS}

    def links(self) -> set[tuple[str, str]]:
        return {(self.origin + s, self.origin + t) for s, ts in self.LINKS.items() for t in ts}


@pytest.fixture
def sitemapped_site() -> Iterator[_Site]:
    site = _Site()
    threading.Thread(target=site.server.serve_forever, daemon=True).start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()


def test_a_sitemap_index_adds_an_orphan_page(sitemapped_site, database_url, redis_url, tmp_path):
    site = sitemapped_site
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn), status="running")
    settings = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
                "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}
    result = run_crawl(SITE, {"job_id": str(job), "start_urls": json.dumps([site.origin + "/"]),
                              "sitemaps": "true"}, settings, stack=True, timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    stats = result.stats
    assert stats.get("crawlgraph/sitemaps/files") == 2  # the index (once), the URL set
    assert stats.get("crawlgraph/sitemaps/failed") == 1  # the index's /maps/gone.xml: 404
    assert stats.get("crawlgraph/sitemaps/urls") == 4

    o = site.origin
    with psycopg.connect(database_url) as conn:
        pages = dict(conn.execute("SELECT url, discovered FROM pages WHERE job_id = %s",
                                  (job,)).fetchall())
        links = set(conn.execute("SELECT source_url, target_url FROM link_urls WHERE job_id = %s",
                                 (job,)).fetchall())
        hops = conn.execute("SELECT count(*) FROM redirects WHERE job_id = %s",
                            (job,)).fetchone()[0]
    # Every page of the site, the orphan too; no sitemap file, robots.txt or offsite URL.
    assert pages == {o + "/": "start", o + "/a": "link", o + "/b": "link",
                     o + "/orphan": "sitemap"}
    assert links == site.links() and hops == 0  # no link or hop made up

    with psycopg.connect(database_url) as conn:
        owner = conn.execute(store.SELECT_JOB_OWNER, (job,)).fetchone()[0]
    build_id = build_now(database_url, tmp_path, owner, [job],
                         GraphBuildRequest(metrics=["degree"]))
    with psycopg.connect(database_url) as conn:
        g = store.load_graph(tmp_path, store.get_build(conn, build_id))
    graph = nx.node_link_graph(json.loads(write_export(g, "json", tmp_path / "g.json")
                                          .read_text()), edges="links")
    labels = dict(graph.nodes(data="label"))
    edges = {(labels[s], labels[t]) for s, t in graph.edges()}
    assert set(labels.values()) == site.pages()
    assert edges == {(s, t) for s, t in site.links() if s != t}
    orphan = next(n for n, label in labels.items() if label == o + "/orphan")
    assert graph.in_degree(orphan) == 0 and graph.out_degree(orphan) == 1
    # The graph file records how each page was found.
    discovered = dict(zip(g.vp.label, g.vp.discovered, strict=True))
    assert discovered == {o + "/": "start", o + "/a": "link", o + "/b": "link",
                          o + "/orphan": "sitemap"}


def test_a_job_without_sitemaps_never_asks_for_one(sitemapped_site, database_url, redis_url):
    site = sitemapped_site
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn), status="running")
    settings = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
                "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}
    result = run_crawl(SITE, {"job_id": str(job), "start_urls": json.dumps([site.origin + "/"])},
                       settings, stack=True, timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    with psycopg.connect(database_url) as conn:
        pages = {u for (u,) in conn.execute("SELECT url FROM pages WHERE job_id = %s", (job,))}
    assert pages == site.pages() - {site.origin + "/orphan"}
    assert "crawlgraph/sitemaps/files" not in result.stats
