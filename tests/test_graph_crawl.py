"""End to end: a mock site crawled through scrapyd into Postgres, then its graphs and files.

The expected graph comes from the site generator's own data (`tests/sitegen.py`),
never from the crawl or the served HTML.
"""

from __future__ import annotations

import json
from collections import Counter

import networkx as nx
import psycopg

from graphs.domains import host_of
from graphs.report import crawl_report
from tests.sitegen import _absolute
from tests.test_spider_site_stack import make_job, schedule_site, seed, wait_finished


def _expected_counts(site, origin: str) -> Counter:
    """(source, target) -> number of <a> elements on the source page pointing at the target,
    a target that redirects counted as the page it lands on (builds fold redirects)."""
    counts: Counter = Counter()
    for path, page in site.pages.items():
        for link in page.links:
            if link.target is not None:
                target = _absolute(origin, site.final_path(link.target))
                counts[(origin + path, target)] += 1
    return counts


def _gexf_edges(path) -> tuple[set[str], dict[tuple[str, str], float]]:
    graph = nx.read_gexf(path)
    labels = {n: d["label"] for n, d in graph.nodes(data=True)}
    return set(labels.values()), {(labels[s], labels[t]): d["weight"]
                                  for s, t, d in graph.edges(data=True)}


def test_crawled_mock_site_graphs_equal_the_generated_site(mock_server, scrapyd_url,
                                                          database_url, redis_url, tmp_path):
    server = mock_server(pages=150, seed=21, tricky=True)
    origin = server.origin
    job = make_job(database_url)
    seed(redis_url, job, [server.start_url])
    crawl = schedule_site(scrapyd_url, job, {"start_urls": json.dumps([server.start_url])},
                          database_url, redis_url)
    wait_finished(scrapyd_url, [crawl], timeout=240)

    site = server.site
    links = site.link_set(origin)
    with psycopg.connect(database_url) as conn:
        stored = set(conn.execute("SELECT source_url, target_url FROM link_urls WHERE job_id = %s",
                                  (job,)).fetchall())
    assert stored == links  # the crawl itself is faithful; the rest is the graph's doing

    report = crawl_report(database_url, tmp_path / "home", job, tmp_path / "out" / job)
    out = tmp_path / "out" / job

    # Page graph (self-loops are dropped by default, redirects folded): every page and
    # link target, a redirecting URL replaced by where it lands, every link between two
    # different URLs, weighted by its number of <a> elements.
    counts = _expected_counts(site, origin)
    folded = site.link_set(origin, resolve_redirects=True)
    nodes, edges = _gexf_edges(out / "page.gexf")
    assert nodes == site.page_urls(origin) | {u for pair in folded for u in pair}
    assert not nodes & set(site.redirect_urls(origin))
    assert set(edges) == {(s, t) for s, t in folded if s != t}
    assert edges == {pair: c for pair, c in counts.items() if pair[0] != pair[1]}

    graphml = nx.read_graphml(out / "page.graphml")
    assert (graphml.number_of_nodes(), graphml.number_of_edges()) == (len(nodes), len(edges))

    # Host graph: the site's host and the external host, the external links folded
    # into one edge whose weight is their total.
    host_nodes, host_edges = _gexf_edges(out / "host.gexf")
    expected_hosts: Counter = Counter()
    for (s, t), c in counts.items():
        if host_of(s) != host_of(t):
            expected_hosts[(host_of(s), host_of(t))] += c
    assert host_nodes == {host_of(u) for u in nodes}
    assert host_edges == dict(expected_hosts)
    assert len(host_nodes) >= 2 and expected_hosts

    with psycopg.connect(database_url) as conn:
        page_rows = conn.execute("SELECT count(*) FROM pages WHERE job_id = %s",
                                 (job,)).fetchone()[0]
    assert f"pages    {page_rows}\n" in report.text
    crawled_hosts = {host_of(u) for u in site.page_urls(origin)}
    assert (f"hosts    {len(host_nodes)}: {len(crawled_hosts)} crawled, "
            f"{len(host_nodes - crawled_hosts)} only linked to (") in report.text
    assert "top 10 pages by PageRank" in report.text
