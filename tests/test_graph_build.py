"""Reading links from Postgres and building page, host and domain graphs, with metrics."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import numpy as np
import psycopg
import pytest

from graphs.build import BuildOptions, build_graph
from graphs.copydecode import decode_text_rows
from graphs.domains import host_of, registered_domain
from graphs.errors import InvalidGraphRequest
from graphs.metrics import compute_metrics
from graphs.models import METRICS, GraphBuildRequest
from graphs.read import read_links
from tests.graphdata import add_links, add_pages, make_job, make_user

HOSTS = ["http://www.example.co.uk", "http://blog.example.co.uk", "https://news.example.org",
         "http://127.0.0.1:8801", "https://a.github.io"]


def _site(seed: int = 7, pages: int = 120) -> tuple[list[str], list[tuple[str, str, int, bool]]]:
    rng = random.Random(seed)
    crawled = [f"{rng.choice(HOSTS)}/p/{i}?q=a&b=<{i}>" for i in range(pages)]
    external = [f"https://ext{i}.example.com/x" for i in range(15)]
    links = {}
    for source in crawled:
        for _ in range(rng.randint(0, 8)):
            target = rng.choice(crawled + external + [source])
            links[(source, target)] = (rng.randint(1, 3), rng.random() < 0.1)
    return crawled, [(s, t, c, nf) for (s, t), (c, nf) in links.items()]


@pytest.fixture
def site(database_url: str):
    crawled, links = _site()
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        job = make_job(conn, owner)
        add_pages(conn, job, crawled)
        add_links(conn, job, links)
    return database_url, job, crawled, links


def _edges(g) -> dict[tuple[str, str], int]:
    labels = list(g.vp.label)
    return {(labels[s], labels[t]): int(w) for s, t, w in g.get_edges([g.ep.weight])}


def test_page_graph_has_exactly_the_pages_and_links(site):
    database_url, job, crawled, links = site
    table = read_links(database_url, [job])
    g = build_graph(table, BuildOptions(level="page", self_loops=True))
    expected_nodes = set(crawled) | {t for _, t, _, _ in links}
    assert set(g.vp.label) == expected_nodes
    assert g.num_vertices() == len(expected_nodes)
    assert _edges(g) == {(s, t): c for s, t, c, _ in links}
    crawled_set = set(crawled)
    assert {label: int(c) for label, c in zip(g.vp.label, g.vp.crawled.a, strict=True)} == {
        url: int(url in crawled_set) for url in expected_nodes}


def test_page_options_drop_loops_nofollow_and_uncrawled(site):
    database_url, job, crawled, links = site
    table = read_links(database_url, [job])
    g = build_graph(table, BuildOptions(include_uncrawled=False, self_loops=False,
                                        nofollow=False))
    crawled_set = set(crawled)
    assert set(g.vp.label) == crawled_set
    assert _edges(g) == {(s, t): c for s, t, c, nf in links
                         if t in crawled_set and s != t and not nf}


def test_host_and_domain_graphs_fold_pages(site):
    database_url, job, crawled, links = site
    table = read_links(database_url, [job])
    for level, fold in (("host", host_of), ("domain", lambda u: registered_domain(host_of(u)))):
        g = build_graph(table, BuildOptions(level=level))
        expected: Counter = Counter()
        for s, t, c, _ in links:
            if fold(s) != fold(t):
                expected[(fold(s), fold(t))] += c
        assert _edges(g) == dict(expected)
        nodes = set(crawled) | {t for _, t, _, _ in links}
        pages = Counter(fold(u) for u in nodes)
        assert dict(zip(g.vp.label, g.vp.pages.a.tolist(), strict=True)) == dict(pages)
    g = build_graph(table, BuildOptions(level="domain"))
    assert {"example.co.uk", "example.org", "127.0.0.1", "a.github.io"} <= set(g.vp.label)


def test_several_jobs_merge_parallel_links(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        first, second = make_job(conn, owner), make_job(conn, owner)
        add_links(conn, first, [("http://a.org/", "http://b.org/", 2, False)])
        add_links(conn, second, [("http://a.org/", "http://b.org/", 3, False),
                                 ("http://b.org/", "http://a.org/", 1, False)])
    g = build_graph(read_links(database_url, [first, second]), BuildOptions())
    assert _edges(g) == {("http://a.org/", "http://b.org/"): 5,
                         ("http://b.org/", "http://a.org/"): 1}


def test_job_with_no_links_is_an_empty_graph(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
    table = read_links(database_url, [job])
    g = build_graph(table, BuildOptions(level="host"))
    summary, _ = compute_metrics(g, list(METRICS))
    assert (g.num_vertices(), g.num_edges()) == (0, 0)
    assert "pagerank" in g.vp and len(g.vp.pagerank.a) == 0
    assert summary == {}


def _reference_pagerank(n: int, edges: np.ndarray, weights: np.ndarray, d: float) -> np.ndarray:
    """Plain power iteration: weighted out-links, dangling rank spread over all nodes."""
    matrix = np.zeros((n, n))
    np.add.at(matrix, (edges[:, 0], edges[:, 1]), weights)
    out = matrix.sum(axis=1)
    dangling = out == 0
    transition = np.divide(matrix, out[:, None], out=np.zeros_like(matrix),
                           where=~dangling[:, None])
    rank = np.full(n, 1.0 / n)
    for _ in range(10_000):
        new = (1 - d) / n + d * (rank @ transition + rank[dangling].sum() / n)
        if np.abs(new - rank).sum() < 1e-14:
            return new
        rank = new
    raise AssertionError("reference power iteration did not converge")


@pytest.mark.parametrize("damping", [0.85, 0.5])
def test_pagerank_matches_a_numpy_power_iteration(site, damping):
    database_url, job, _, _ = site
    g = build_graph(read_links(database_url, [job]), BuildOptions(level="page"))
    compute_metrics(g, ["pagerank"], {"damping": damping})
    edges = g.get_edges([g.ep.weight])
    reference = _reference_pagerank(g.num_vertices(), edges[:, :2], edges[:, 2], damping)
    assert np.abs(g.vp.pagerank.a - reference).max() < 1e-6
    assert abs(g.vp.pagerank.a.sum() - 1.0) < 1e-6


def test_metrics_are_consistent_with_the_graph(site):
    database_url, job, _, links = site
    g = build_graph(read_links(database_url, [job]), BuildOptions(level="page"))
    summary, timings = compute_metrics(g, list(METRICS), {"communities_seconds": 60})
    assert set(timings) == set(METRICS)
    labels = list(g.vp.label)
    out_weight = defaultdict(int)
    for s, t, c, _ in links:
        if s != t:
            out_weight[s] += c
    assert {lbl: int(w) for lbl, w in zip(labels, g.vp.out_weight.a, strict=True) if w} == dict(
        out_weight)
    assert g.vp.in_degree.a.sum() == g.vp.out_degree.a.sum() == g.num_edges()
    assert summary["components"]["weak"] == len(set(g.vp.component.a.tolist()))
    assert summary["betweenness"] == {"exact": True, "pivots": g.num_vertices()}
    assert 0 <= summary["reciprocity"] <= 1
    n = g.num_vertices()
    assert summary["density"] == pytest.approx(g.num_edges() / (n * (n - 1)))
    assert summary["communities"]["count"] == len(set(g.vp.community.a.tolist()))
    assert (g.vp.closeness.a >= 0).all() and (g.vp.closeness.a <= 1).all()


def test_sampled_betweenness_says_how_many_pivots(site):
    database_url, job, _, _ = site
    g = build_graph(read_links(database_url, [job]), BuildOptions())
    summary, _ = compute_metrics(g, ["betweenness"], {"betweenness_pivots": 10})
    assert summary["betweenness"] == {"exact": False, "pivots": 10}


def test_communities_time_bound_is_reported(site, monkeypatch):
    import graphs.metrics as metrics

    database_url, job, _, _ = site
    g = build_graph(read_links(database_url, [job]), BuildOptions())
    # A child that never finishes stands for a fit that runs past its time.
    monkeypatch.setattr(metrics, "SBM_MODULE", "tests.graph_sleeper")
    summary, _ = compute_metrics(g, ["communities"], {"communities_seconds": 1})
    assert "within 1 s" in summary["skipped"]["communities"]
    assert "community" not in g.vp


@pytest.mark.parametrize("body, word", [
    ({"metrics": ["pagerank", "fame"]}, "fame"),
    ({"level": "planet"}, "planet"),
    ({"damping": 1.5}, "damping"),
])
def test_bad_requests_are_422(body, word):
    import msgspec

    request = msgspec.convert(body, GraphBuildRequest)
    with pytest.raises(InvalidGraphRequest) as err:
        request.validate()
    assert err.value.status_code == 422 and word in str(err.value)


def test_text_copy_escapes_are_undone():
    text = "5\t200\thttp://a/\\\\x\\ty\n-3\t-1\thttp://b/\n"
    (hashes, status), urls = decode_text_rows(text, ("int64", "int32"))
    assert hashes.tolist() == [5, -3] and status.tolist() == [200, -1]
    assert urls == ["http://a/\\x\ty", "http://b/"]


def test_url_with_a_newline_falls_back_to_row_reads(database_url):
    odd = "http://a.test/x\ny\\z\tw"
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_links(conn, job, [("http://a.test/", odd, 1, False),
                              (odd, "http://a.test/", 2, False)])
    table = read_links(database_url, [job])
    assert "read_nodes_rows" in table.timings
    g = build_graph(table, BuildOptions())
    assert _edges(g) == {("http://a.test/", odd): 1, (odd, "http://a.test/"): 2}


def test_a_link_source_that_is_no_stored_page_is_still_a_node(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn))
        add_pages(conn, job, ["http://a.test/"])
        add_links(conn, job, [("http://a.test/", "http://b.test/", 1, False),
                              ("http://orphan.test/", "http://a.test/", 1, False)])
    table = read_links(database_url, [job])
    g = build_graph(table, BuildOptions())
    assert _edges(g) == {("http://a.test/", "http://b.test/"): 1,
                         ("http://orphan.test/", "http://a.test/"): 1}
    crawled = dict(zip(g.vp.label, g.vp.crawled.a.tolist(), strict=True))
    assert crawled == {"http://a.test/": 1, "http://b.test/": 0, "http://orphan.test/": 0}
