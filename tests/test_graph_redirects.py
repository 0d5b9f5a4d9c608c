"""One page, one node: redirect hops stored by the crawl and folded by graph builds.

The crawl side: every redirect Scrapy follows is a `redirects` row (the pages
middleware, the rows, the store, the migration). The graph side: the read
gets one hop per redirecting URL (from `redirects`, else from a page's request
and final URL) and the build folds them. End to end, sites whose links go
partly through redirecting URLs are crawled into Postgres and their exported
page graphs compared with the truth computed from the sites' own data (a
small site served here on three ports, and the mock server's tricky site),
never with what the crawler reported.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import networkx as nx
import psycopg
import pytest
from scrapy import signals
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware, RedirectMiddleware
from scrapy.http import HtmlResponse, Request

from crawler.items import Redirect
from crawler.pipelines.rows import RowError, to_row
from crawler.pipelines.storage import StoragePipeline
from crawler.pipelines.store import PostgresStore
from graphs import store
from graphs.build import BuildOptions, build_graph
from graphs.exports import write_export
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now
from graphs.read import read_links
from tests.crawlrun import run_crawl
from tests.graphdata import add_links, add_pages, make_job, make_user
from tests.sitegen import _absolute
from tests.spiders.kit import kit_crawler, page, scrape

SITE = "crawler.spiders.site.SiteSpider"


# --- the crawl stores every hop -------------------------------------------------------------

def _redirected(middleware, request: Request, status: int, location: str) -> Request:
    response = HtmlResponse(request.url, status=status, headers={"Location": location},
                            request=request)
    out = middleware.process_response(request, response)
    assert isinstance(out, Request)
    return out


def _hops(database_url: str, job: uuid.UUID) -> set[tuple[str, str, int | None]]:
    with psycopg.connect(database_url) as conn:
        return set(conn.execute("SELECT url, target_url, status FROM redirects "
                                "WHERE job_id = %s", (job,)).fetchall())


def test_every_redirect_scheduled_is_a_stored_hop(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
    crawler = kit_crawler({"start_urls": "http://a.example/", "job_id": str(job)},
                          {"CRAWLGRAPH_DATABASE_URL": database_url})
    storage = StoragePipeline.from_crawler(crawler)
    redirects = RedirectMiddleware.from_crawler(crawler)
    refresh = MetaRefreshMiddleware.from_crawler(crawler)

    # http://a.example/x -> /x/ (301) -> https://a.example/x/ (302).
    first = _redirected(redirects, Request("http://a.example/x"), 301, "/x/")
    second = _redirected(redirects, first, 302, "https://a.example/x/")
    moved = HtmlResponse("http://a.example/old", request=Request("http://a.example/old"),
                         body=b'<html><head><meta http-equiv="refresh" content="0; url=/new">'
                              b"</head></html>")
    refreshed = refresh.process_response(moved.request, moved)
    # The same URL spelled another way is no hop.
    same = _redirected(redirects, Request("http://a.example/p?b=1&a=2"), 301,
                       "http://A.example/p?a=2&b=1")
    # A callback that copies a redirected response's meta into its request follows no redirect.
    landed = page("https://a.example/x/", '<a href="/y">y</a>', meta=dict(second.meta))
    (copied,) = [o for o in scrape(crawler, landed, [Request("http://a.example/z",
                                                             meta=dict(second.meta))])
                 if isinstance(o, Request)]

    async def crawl() -> None:
        await storage.open_spider()
        for request in (first, second, refreshed, same, copied, second.copy()):  # a retry too
            crawler.signals.send_catch_log(signals.request_scheduled, request=request,
                                           spider=crawler.spider)
        await storage.close_spider()

    asyncio.run(crawl())
    assert _hops(database_url, job) == {
        ("http://a.example/x", "http://a.example/x/", 301),
        ("http://a.example/x/", "https://a.example/x/", 302),
        ("http://a.example/old", "http://a.example/new", None),
    }
    assert crawler.stats.get_value("crawlgraph/redirects") == 4


def test_hops_are_replaced_and_a_bad_one_is_a_dead_letter(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
    writer = PostgresStore(database_url, str(job))
    try:
        writer.write([to_row(Redirect(url="http://a.test/", target_url="https://a.test/",
                                      status=302))])
        with pytest.raises(RowError) as bad:
            to_row(Redirect(url="http://a.test/m", target_url="mailto:x@a.test", status=301))
        result = writer.write(
            [to_row(Redirect(url="http://a.test/", target_url="https://www.a.test/",
                             status=301))],
            dead=[(bad.value.kind, bad.value.payload, str(bad.value))])
    finally:
        writer.close()
    assert result.stored == 1
    assert _hops(database_url, job) == {("http://a.test/", "https://www.a.test/", 301)}
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT kind FROM dead_letters WHERE job_id = %s",
                            (job,)).fetchall() == [("redirect",)]


# --- the read gets one hop per redirecting URL -------------------------------------------

def _add_redirects(conn: psycopg.Connection, job: uuid.UUID,
                   hops: list[tuple[str, str, int | None]]) -> None:
    with conn.cursor() as cur, cur.copy(
            "COPY redirects (job_id, url, target_url, status) FROM STDIN") as copy:
        for row in hops:
            copy.write_row((job, *row))


def _add_moved_page(conn: psycopg.Connection, job: uuid.UUID, url: str, final_url: str) -> None:
    conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at) "
                 "VALUES (%s, %s, %s, 200, %s)", (job, url, final_url, datetime.now(UTC)))


def _graph(g) -> tuple[set[str], dict[tuple[str, str], int], set[tuple[str, str]]]:
    labels = list(g.vp.label)
    edges = {(labels[s], labels[t]): int(w) for s, t, w in g.get_edges([g.ep.weight])}
    hops = ({(labels[s], labels[t]) for s, t, r in g.get_edges([g.ep.redirect]) if r}
            if "redirect" in g.ep else set())
    return set(labels), edges, hops


def test_the_read_takes_hops_from_redirects_and_else_from_moved_pages(database_url):
    home, a, a_slash, old, new, loop = ("https://x.test/", "http://x.test/a", "https://x.test/a/",
                                        "http://x.test/old", "https://x.test/new",
                                        "https://x.test/loop")
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        job, other = make_job(conn, owner), make_job(conn, owner)
        add_pages(conn, job, [home, a_slash])
        # A page fetched through a redirect, stored before `redirects` existed: old -> new.
        _add_moved_page(conn, job, old, new)
        # The hop of `a` is in `redirects`; its page says where the chain ended.
        _add_moved_page(conn, job, a, a_slash)
        _add_redirects(conn, job, [(a, "https://x.test/a", 301)])
        _add_redirects(conn, other, [("https://x.test/a", a_slash, 301),
                                     (loop, loop + "2", 307), (loop + "2", loop, None)])
        add_links(conn, job, [(home, a, 2, False), (home, a_slash, 1, False),
                              (home, old, 1, False), (a_slash, loop, 1, False)])
    table = read_links(database_url, [job, other])
    hops = {table.urls[s]: table.urls[t]
            for s, t in zip(table.redirect_source, table.redirect_target, strict=True)}
    assert hops == {a: "https://x.test/a", "https://x.test/a": a_slash, old: new,
                    loop: loop + "2", loop + "2": loop}
    status = dict(zip(table.urls, table.status.tolist(), strict=True))
    assert status[loop + "2"] == 0 and status["https://x.test/a"] == 301  # fetched, redirected

    # The loop lands nowhere: the linked URL stays, the other is no node.
    assert _graph(build_graph(table, BuildOptions())) == (
        {home, a_slash, new, loop},
        {(home, a_slash): 3, (home, new): 1, (a_slash, loop): 1}, set())
    nodes, edges, hops = _graph(build_graph(table, BuildOptions(fold_redirects=False)))
    assert nodes == {home, a, "https://x.test/a", a_slash, old, new, loop, loop + "2"}
    assert hops == {(a, "https://x.test/a"), ("https://x.test/a", a_slash), (old, new),
                    (loop, loop + "2"), (loop + "2", loop)}
    assert edges == {(home, a): 2, (home, a_slash): 1, (home, old): 1, (a_slash, loop): 1,
                     **dict.fromkeys(hops, 1)}


# --- end to end: crawled sites, exported graphs, the truth from the sites' data ------------

class _Site:
    """A site on three origins, as data: `www` (the site), `apex` (every path 301s to the
    same path on www) and `other` (out of scope).

    Hrefs and locations may contain `{www}`, `{apex}` and `{other}` (the origins).
    """

    PAGES: dict[tuple[str, str], tuple[int, list[str]]] = {
        ("www", "/"): (200, ["/a/", "/a", "{apex}/b/", "{apex}/c", "/out", "/loop1",
                             "/refresh", "/gone"]),
        ("www", "/a/"): (200, ["/", "/b", "{apex}/a/"]),
        ("www", "/b/"): (200, ["/c/", "/a"]),
        ("www", "/c/"): (200, ["/"]),
        ("www", "/d/"): (200, ["/a/"]),
        ("www", "/missing/"): (404, []),
        ("other", "/landing"): (200, []),
    }
    REDIRECTS: dict[tuple[str, str], tuple[int, str]] = {
        ("www", "/a"): (301, "{www}/a/"),  # trailing slash
        ("www", "/b"): (301, "{www}/b/"),
        ("www", "/c"): (301, "{www}/c/"),
        ("www", "/out"): (302, "{other}/landing"),  # offsite
        ("www", "/loop1"): (307, "{www}/loop2"),  # a loop
        ("www", "/loop2"): (307, "{www}/loop1"),
        ("www", "/gone"): (308, "{www}/missing/"),  # to a 404 page
    }
    REFRESH = {("www", "/refresh"): "/d/"}  # <meta http-equiv="refresh">

    def __init__(self) -> None:
        self.servers: dict[str, ThreadingHTTPServer] = {}
        for role in ("www", "apex", "other"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(role))
            server.daemon_threads = True
            self.servers[role] = server
        self.origins = {role: f"http://127.0.0.1:{s.server_address[1]}"
                        for role, s in self.servers.items()}

    def url(self, text: str) -> str:
        return text.format(**self.origins)

    def redirect(self, role: str, path: str) -> tuple[int, str] | None:
        if role == "apex":
            return 301, self.origins["www"] + path
        if (role, path) in self.REDIRECTS:
            status, location = self.REDIRECTS[(role, path)]
            return status, self.url(location)
        return None

    def _handler(self, role: str) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path
                moved = site.redirect(role, path)
                if moved is not None:
                    self._send(moved[0], b"", {"Location": moved[1]})
                elif (role, path) in site.REFRESH:
                    self._send(200, (f'<html><head><meta http-equiv="refresh" content="0; '
                                     f'url={site.REFRESH[(role, path)]}"></head></html>').encode())
                elif (role, path) in site.PAGES:
                    status, hrefs = site.PAGES[(role, path)]
                    links = "".join(f'<a href="{site.url(h)}">{h}</a>' for h in hrefs)
                    self._send(status, f"<html><body>{links}</body></html>".encode())
                else:
                    self._send(404, b"no such page")

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    # --- the truth -----------------------------------------------------------------
    def link_counts(self) -> Counter:
        """(page, URL an href means) -> number of <a> elements, on every page with links."""
        counts: Counter = Counter()
        for (role, path), (_, hrefs) in self.PAGES.items():
            source = self.origins[role] + path
            for href in hrefs:
                target = self.url(href)
                counts[(source, target if target.startswith("http")
                        else self.origins[role] + target)] += 1
        return counts

    def hops(self) -> dict[str, tuple[int | None, str]]:
        """Every redirecting URL the crawl meets -> (status, where to); None: meta refresh."""
        out = {self.origins[role] + path: self.redirect(role, path)
               for role, path in self.REDIRECTS}
        out.update({self.origins[role] + path: (None, self.origins[role] + target)
                    for (role, path), target in self.REFRESH.items()})
        apex = self.origins["apex"]
        for _, target in self.link_counts():  # the apex URLs linked to
            if target.startswith(apex):
                out[target] = self.redirect("apex", target[len(apex):])
        return out

    def targets(self) -> dict[str, str]:
        return {url: target for url, (_, target) in self.hops().items()}

    def landed(self, url: str) -> str:
        hops, seen = self.targets(), {url}
        end = url
        while end in hops:
            end = hops[end]
            if end in seen:
                return url  # a loop lands nowhere
            seen.add(end)
        return end

    def pages(self) -> set[str]:
        return {self.origins[role] + path for role, path in self.PAGES}

    def start(self) -> None:
        for server in self.servers.values():
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture
def redirecting_site() -> Iterator[_Site]:
    site = _Site()
    site.start()
    try:
        yield site
    finally:
        site.stop()


def _crawl(database_url: str, redis_url: str, start_url: str, **args: str) -> uuid.UUID:
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn), status="running")
    settings = {"CRAWLGRAPH_DATABASE_URL": database_url, "CRAWLGRAPH_REDIS_URL": redis_url,
                "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}
    result = run_crawl(SITE, {"job_id": str(job), "start_urls": json.dumps([start_url]),
                              **args}, settings, stack=True, timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    return job


def _exported(database_url: str, home: Path, job: uuid.UUID, **options) -> tuple[
        set[str], dict[tuple[str, str], int], set[tuple[str, str]]]:
    """Nodes, edge weights and redirect edges of the build's JSON export."""
    with psycopg.connect(database_url) as conn:
        owner = conn.execute(store.SELECT_JOB_OWNER, (job,)).fetchone()[0]
    build_id = build_now(database_url, home, owner, [job],
                         GraphBuildRequest(metrics=["degree"], **options))
    with psycopg.connect(database_url) as conn:
        g = store.load_graph(home, store.get_build(conn, build_id))
    path = write_export(g, "json", home / f"{build_id}.json")
    graph = nx.node_link_graph(json.loads(path.read_text()), edges="links")
    labels = dict(graph.nodes(data="label"))
    edges = {(labels[s], labels[t]): d["weight"] for s, t, d in graph.edges(data=True)}
    hops = {(labels[s], labels[t]) for s, t, d in graph.edges(data=True) if d.get("redirect")}
    return set(labels.values()), edges, hops


def _folded(counts: Counter, land) -> dict[tuple[str, str], int]:
    out: Counter = Counter()
    for (s, t), c in counts.items():
        a, b = land(s), land(t)
        if a != b:
            out[(a, b)] += c
    return dict(out)


def _with_hops(counts: Counter, hops: dict[str, str]) -> dict[tuple[str, str], int]:
    out = Counter({pair: c for pair, c in counts.items() if pair[0] != pair[1]})
    for pair in hops.items():
        out[pair] += 1
    return dict(out)


def test_a_site_reached_through_redirects_has_its_true_link_graph(redirecting_site, database_url,
                                                                   redis_url, tmp_path):
    site = redirecting_site
    www, apex = site.origins["www"], site.origins["apex"]
    job = _crawl(database_url, redis_url, www + "/",
                 allowed_domains=json.dumps([www[7:], apex[7:]]))
    counts, hops = site.link_counts(), site.targets()
    assert _hops(database_url, job) == {(u, t, status)
                                        for u, (status, t) in site.hops().items()}

    nodes, edges, redirects = _exported(database_url, tmp_path, job)
    ends = {u for pair in counts for u in pair} | site.pages()
    assert nodes == {site.landed(u) for u in ends}
    assert edges == _folded(counts, site.landed) and not redirects
    assert (www + "/", www + "/a/") in edges and edges[(www + "/", www + "/a/")] == 2
    assert not any(u.startswith(apex) for u in nodes)  # the apex only redirected

    nodes, edges, redirects = _exported(database_url, tmp_path, job, fold_redirects=False)
    assert nodes == ends | set(hops) | set(hops.values())
    assert edges == _with_hops(counts, hops) and redirects == set(hops.items())

    # The host level folds the same way: the apex is no host of the folded graph.
    host_of = lambda url: url.split("/")[2]  # noqa: E731
    nodes, edges, _ = _exported(database_url, tmp_path, job, level="host")
    assert nodes == {host_of(www), host_of(site.origins["other"])}
    assert edges == _folded(Counter({(host_of(site.landed(s)), host_of(site.landed(t))): c
                                     for (s, t), c in counts.items()}), lambda h: h)


def test_the_tricky_mock_site_folds_to_its_generated_link_graph(mock_server, database_url,
                                                                redis_url, tmp_path):
    server = mock_server(pages=150, seed=21, tricky=True)
    site, origin = server.site, server.origin
    job = _crawl(database_url, redis_url, server.start_url)
    counts: Counter = Counter()
    for path, spec in site.pages.items():
        for link in spec.links:
            if link.target is not None:
                counts[(origin + path, _absolute(origin, link.target))] += 1
    hops = {origin + path: origin + location for path, (_, location) in site.redirects.items()}
    assert any(site.redirects[p][1] in site.redirects for p in site.redirects)  # chains
    land = lambda url: _absolute(origin, site.final_path(url[len(origin):])) \
        if url.startswith(origin) else url  # noqa: E731

    nodes, edges, redirects = _exported(database_url, tmp_path, job)
    assert nodes == site.page_urls(origin) | {u for pair in site.link_set(
        origin, resolve_redirects=True) for u in pair}
    assert edges == _folded(counts, land) and not redirects

    nodes, edges, redirects = _exported(database_url, tmp_path, job, fold_redirects=False)
    assert nodes == site.page_urls(origin) | {u for pair in counts for u in pair} | set(hops)
    assert edges == _with_hops(counts, hops) and redirects == set(hops.items())
