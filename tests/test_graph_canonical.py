"""Canonical URLs: stored per page, read by graph builds, folded with `fold_canonical`,
an attribute of the page nodes otherwise; and the nodes' `discovered` in every export.

The build is checked against a plain-Python fold (no database), the read on
rows written to Postgres, and end to end a crawl of named sites whose pages
have `?ref=` and print variants, a PDF with a canonical `Link` header, a
canonical through a redirecting URL, a chain, a loop and a meta refresh
(`tests.websites`, ``canonicals=True``): the exported page graph, folded and
not, equals the truth computed from the generator's data.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import networkx as nx
import numpy as np
import psycopg
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import store
from graphs.build import BuildOptions, build_graph
from graphs.exports import exporter, write_export
from graphs.models import GraphBuildRequest
from graphs.pipeline import build_now
from graphs.read import LinkTable, read_links
from tests.crawlrun import run_crawl
from tests.graphdata import add_links, make_job, make_user
from tests.test_graph_exports import GEXF_XSD
from tests.test_graph_fold import URLS, _fold, _landed
from tests.websites import websites_fixture  # noqa: F401 - the `websites` fixture

SITE = "crawler.spiders.site.SiteSpider"

# --- the build against a plain-Python fold ------------------------------------------------

tables = st.tuples(
    st.dictionaries(
        st.tuples(st.sampled_from(range(len(URLS))), st.sampled_from(range(len(URLS)))),
        st.tuples(st.integers(1, 5), st.booleans()), max_size=40),
    st.sets(st.sampled_from(range(len(URLS)))),
    # Hops and canonicals among a few URLs, so that chains and loops of both come up.
    st.dictionaries(st.sampled_from(range(9)), st.sampled_from(range(9)), max_size=6),
    st.dictionaries(st.sampled_from(range(12)), st.sampled_from(range(12)), max_size=8),
)
options = st.builds(BuildOptions, level=st.sampled_from(["page", "host", "domain"]),
                    include_uncrawled=st.booleans(), self_loops=st.booleans(),
                    fold_redirects=st.booleans(), fold_canonical=st.booleans())


def _table(links: dict, crawled: set[int], hops: dict[int, int],
           canonicals: dict[int, int]) -> LinkTable:
    """Like the read gives it: redirecting URLs fetched (301), declaring pages fetched (200)."""
    used = sorted({i for pair in links for i in pair} | crawled | set(hops) | set(hops.values())
                  | set(canonicals) | set(canonicals.values()))
    index = {u: n for n, u in enumerate(used)}
    status = [200 if u in crawled or u in canonicals else 301 if u in hops else -1
              for u in used]
    pairs = list(links.items())
    return LinkTable(
        urls=[URLS[u] for u in used], status=np.array(status, dtype=np.int32),
        source=np.array([index[s] for (s, _), _ in pairs], dtype=np.int64),
        target=np.array([index[t] for (_, t), _ in pairs], dtype=np.int64),
        count=np.array([c for _, (c, _) in pairs], dtype=np.int32),
        nofollow=np.array([nf for _, (_, nf) in pairs], dtype=bool),
        redirect_source=np.array([index[s] for s in hops], dtype=np.int64),
        redirect_target=np.array([index[t] for t in hops.values()], dtype=np.int64),
        canonical_source=np.array([index[s] for s in canonicals], dtype=np.int64),
        canonical_target=np.array([index[t] for t in canonicals.values()], dtype=np.int64),
    )


def _expected(links, crawled, hops, canonicals, opts: BuildOptions):
    """Nodes (label -> pages), crawled counts, edges (label pair -> weight), canonical attrs."""
    used = ({i for pair in links for i in pair} | crawled | set(hops) | set(hops.values())
            | set(canonicals) | set(canonicals.values()))
    fetched = crawled | set(hops) | set(canonicals)
    linked = {i for pair in links for i in pair}

    def land(u: int) -> int:
        return _landed(u, hops) if opts.fold_redirects else u

    def final(u: int) -> int:
        if not opts.fold_canonical:
            return land(u)
        v, seen = land(u), {u, land(u)}
        while True:
            nxt = land(canonicals.get(v, v))
            if nxt == v:
                return v
            if nxt in seen:
                return land(u)  # a loop of canonicals: it stays where it landed
            seen.add(nxt)
            v = nxt

    keep = {u for u in used if final(u) == u
            and (not opts.fold_redirects or u not in hops or u in linked)}
    folded_into = {final(u) for u in canonicals} if opts.fold_canonical else set()
    if not opts.include_uncrawled:
        keep &= fetched | folded_into
    # A URL that is only a canonical is a node only if a page folds into it.
    keep -= (set(canonicals.values()) - fetched - linked - set(hops.values())) - folded_into
    nodes = Counter(_fold(URLS[u], opts.level) for u in keep)
    crawled_counts = Counter(_fold(URLS[u], opts.level) for u in keep & fetched)
    edges: Counter = Counter()
    candidates = [(final(s), final(t), c, nf) for (s, t), (c, nf) in links.items()]
    if not opts.fold_redirects:
        candidates += [(final(s), final(t), 1, False) for s, t in hops.items()]
    for s, t, count, _ in candidates:
        if s in keep and t in keep:
            a, b = _fold(URLS[s], opts.level), _fold(URLS[t], opts.level)
            if a != b or opts.self_loops:
                edges[(a, b)] += count
    declared = ({URLS[u]: URLS[canonicals[u]] if u in canonicals else "" for u in keep}
                if opts.level == "page" and not opts.fold_canonical else None)
    return dict(nodes), dict(crawled_counts), dict(edges), declared


@settings(max_examples=250, deadline=None)
@given(tables, options)
def test_canonical_folding_equals_a_plain_python_fold(data, opts):
    links, crawled, hops, canonicals = data
    hops = {s: t for s, t in hops.items() if s != t}
    g = build_graph(_table(links, crawled, hops, canonicals), opts)
    labels = list(g.vp.label)
    got = (dict(zip(labels, g.vp.pages.a.tolist(), strict=True)),
           {k: v for k, v in zip(labels, g.vp.crawled.a.tolist(), strict=True) if v},
           {(labels[s], labels[t]): int(w) for s, t, w in g.get_edges([g.ep.weight])},
           dict(zip(labels, g.vp.canonical, strict=True)) if "canonical" in g.vp else None)
    assert got == _expected(links, crawled, hops, canonicals, opts)
    assert bool(g.gp.fold_canonical) == opts.fold_canonical


# --- the read ---------------------------------------------------------------------------------

def _page(conn, job, url, final_url=None, canonical=None, discovered="link"):
    conn.execute("INSERT INTO pages (job_id, url, final_url, status, fetched_at, discovered, "
                 "canonical_url) VALUES (%s, %s, %s, 200, now(), %s, %s)",
                 (job, url, final_url or url, discovered, canonical))


def test_the_read_takes_each_pages_canonical_on_its_final_url(database_url):
    o = "https://x.test"
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        job, other = make_job(conn, owner), make_job(conn, owner)
        _page(conn, job, o + "/", discovered="start")
        # Fetched through a redirect: its canonical is said on the URL it landed on.
        _page(conn, job, "http://x.test/p", o + "/p", canonical=o + "/main")
        # A canonical no link points at and nobody fetched is a node all the same.
        _page(conn, job, o + "/print", canonical="https://elsewhere.test/a")
        # Two jobs that disagree: one canonical, the least.
        _page(conn, job, o + "/both", canonical=o + "/z")
        _page(conn, other, o + "/both", canonical=o + "/main")
        add_links(conn, job, [(o + "/", o + "/p", 1, False), (o + "/", o + "/print", 1, False),
                              (o + "/", o + "/both", 1, False), (o + "/", o + "/main", 1, False)])
    table = read_links(database_url, [job, other])
    pairs = {table.urls[s]: table.urls[t]
             for s, t in zip(table.canonical_source, table.canonical_target, strict=True)}
    assert pairs == {o + "/p": o + "/main", o + "/print": "https://elsewhere.test/a",
                     o + "/both": o + "/main"}
    status = dict(zip(table.urls, table.status.tolist(), strict=True))
    assert status["https://elsewhere.test/a"] == -1

    folded = build_graph(table, BuildOptions(fold_canonical=True))
    labels = list(folded.vp.label)
    # The canonical another job's page lost (/z) is no node: no page folds into it.
    assert set(labels) == {o + "/", o + "/main", "https://elsewhere.test/a"}
    assert {(labels[s], labels[t]): int(w) for s, t, w in folded.get_edges([folded.ep.weight])} \
        == {(o + "/", o + "/main"): 3, (o + "/", "https://elsewhere.test/a"): 1}
    assert "canonical" not in folded.vp
    # Only what was fetched: the canonical nobody fetched is the node of the page folded in.
    crawled = build_graph(table, BuildOptions(fold_canonical=True, include_uncrawled=False))
    assert "https://elsewhere.test/a" in set(crawled.vp.label)
    kept = build_graph(table, BuildOptions())
    declared = dict(zip(kept.vp.label, kept.vp.canonical, strict=True))
    # Not folded, a URL that is only a canonical is no node.
    assert declared == {o + "/": "", o + "/p": o + "/main", o + "/main": "",
                        o + "/print": "https://elsewhere.test/a", o + "/both": o + "/main"}


# --- text attributes in graph_nodes and every export --------------------------------------

def _exports(g) -> dict[str, dict[str, dict[str, str]]]:
    """Label -> its text attributes, as each export format writes them."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    text = "".join(exporter("json")(g))
    data = json.loads(text)
    out["json"] = {n["label"]: {k: n[k] for k in ("discovered", "canonical") if k in n}
                   for n in data["nodes"]}
    rows = list(csv.DictReader(io.StringIO("".join(exporter("csv", "nodes")(g)))))
    out["csv"] = {r["label"]: {k: r[k] for k in ("discovered", "canonical") if k in r}
                  for r in rows}
    for fmt in ("graphml", "gexf"):
        graph = (nx.read_graphml if fmt == "graphml" else nx.read_gexf)(
            io.BytesIO("".join(exporter(fmt)(g)).encode()))
        out[fmt] = {d["label"]: {k: d.get(k, "") for k in ("discovered", "canonical")
                                 if any(k in e for _, e in graph.nodes(data=True))}
                    for _, d in graph.nodes(data=True)}
        ElementTree.fromstring("".join(exporter(fmt)(g)))  # well-formed
    xmlschema.XMLSchema(GEXF_XSD).validate(io.StringIO("".join(exporter("gexf")(g))))
    return out


def test_discovered_and_canonical_are_in_graph_nodes_and_every_export(database_url, tmp_path):
    o = "https://x.test"
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = make_user(conn)
        job = make_job(conn, owner)
        _page(conn, job, o + "/", discovered="start")
        _page(conn, job, o + "/a", canonical=o + '/"<&>"')  # escaped wherever it is written
        _page(conn, job, o + "/orphan", discovered="sitemap")  # listed only in a sitemap
        add_links(conn, job, [(o + "/", o + "/a", 1, False), (o + "/a", o + "/", 1, False),
                              (o + "/orphan", o + "/", 1, False)])
    build_id = build_now(database_url, tmp_path, owner, [job],
                         GraphBuildRequest(metrics=["degree"]))
    with psycopg.connect(database_url) as conn:
        build = store.get_build(conn, build_id)
        g = store.load_graph(tmp_path, build)
        nodes = {n["label"]: (n["discovered"], n["canonical"])
                 for n in store.top_nodes(conn, build, "label", "asc", 10)}
    tricky = o + '/"<&>"'
    assert nodes == {o + "/": ("start", None), o + "/a": ("link", tricky),
                     o + "/orphan": ("sitemap", None)}
    expected = {o + "/": {"discovered": "start", "canonical": ""},
                o + "/a": {"discovered": "link", "canonical": tricky},
                o + "/orphan": {"discovered": "sitemap", "canonical": ""}}
    for fmt, found in _exports(g).items():
        assert found == expected, fmt
    # Folded, a page has no canonical attribute; host level has neither.
    folded = build_now(database_url, tmp_path, owner, [job],
                       GraphBuildRequest(metrics=["degree"], fold_canonical=True))
    host = build_now(database_url, tmp_path, owner, [job],
                     GraphBuildRequest(metrics=["degree"], level="host"))
    with psycopg.connect(database_url) as conn:
        g = store.load_graph(tmp_path, store.get_build(conn, folded))
        assert {label: attrs["discovered"] for label, attrs in _exports(g)["json"].items()} == {
            o + "/": "start", tricky: "", o + "/orphan": "sitemap"}
        assert all("canonical" not in attrs for attrs in _exports(g)["gexf"].values())
        g = store.load_graph(tmp_path, store.get_build(conn, host))
        assert _exports(g)["csv"] == {"x.test": {}}


# --- end to end: a crawl of sites with canonicals, the truth from the generator ------------

def _crawl(sites, database_url: str, redis_url: str) -> uuid.UUID:
    with psycopg.connect(database_url, autocommit=True) as conn:
        job = make_job(conn, make_user(conn), status="running")
    settings = {**sites.settings, "CRAWLGRAPH_DATABASE_URL": database_url,
                "CRAWLGRAPH_REDIS_URL": redis_url}
    result = run_crawl(SITE, {"job_id": str(job),
                              "start_urls": json.dumps([sites.world.home()]),
                              "allowed_domains": json.dumps(list(sites.world.sites))},
                       settings, stack=True, timeout=240)
    assert result.reason == "finished", result.log[-3000:]
    return job


def _exported(database_url: str, home: Path, job: uuid.UUID, **options):
    """Nodes (label -> canonical attribute or None) and edges of the build's GEXF export."""
    with psycopg.connect(database_url) as conn:
        owner = conn.execute(store.SELECT_JOB_OWNER, (job,)).fetchone()[0]
    build_id = build_now(database_url, home, owner, [job],
                         GraphBuildRequest(metrics=["degree"], self_loops=True, **options))
    with psycopg.connect(database_url) as conn:
        g = store.load_graph(home, store.get_build(conn, build_id))
    graph = nx.read_gexf(write_export(g, "gexf", home / f"{build_id}.gexf"))
    labels = dict(graph.nodes(data="label"))
    nodes = {labels[n]: d.get("canonical") for n, d in graph.nodes(data=True)}
    return nodes, {(labels[s], labels[t]) for s, t in graph.edges()}


def test_a_crawled_site_with_canonicals_has_its_true_graph_folded_and_not(
        websites, database_url, redis_url, tmp_path):
    sites = websites(pages=9, seed=7, canonicals=True)
    world, site = sites.world, sites.world.sites[0]
    job = _crawl(sites, database_url, redis_url)
    with psycopg.connect(database_url) as conn:
        stored = dict(conn.execute("SELECT final_url, canonical_url FROM pages WHERE job_id = %s"
                                   " AND canonical_url IS NOT NULL", (job,)).fetchall())
        refreshes = conn.execute("SELECT count(*) FROM redirects WHERE job_id = %s "
                                 "AND status IS NULL", (job,)).fetchone()[0]
    assert stored == world.canonicals(site)
    assert refreshes == len(world.refreshes) > 0

    nodes, edges = _exported(database_url, tmp_path, job)
    assert set(nodes) == world.graph_nodes(site)
    assert edges == world.link_graph(site)
    assert {u: c for u, c in nodes.items() if c} == world.canonicals(site)

    nodes, edges = _exported(database_url, tmp_path, job, fold_canonical=True)
    assert set(nodes) == world.graph_nodes(site, fold_canonical=True)
    assert edges == world.link_graph(site, fold_canonical=True)
    assert set(nodes.values()) == {None}  # folded: no canonical attribute
    # The variants are gone, the loop stays: folding did something, and not everything.
    assert len(nodes) < len(world.graph_nodes(site))
    assert any("?ref=a" in u for u in nodes)
