"""Property tests of the array-based build against a plain-Python fold (no database)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs.build import BuildOptions, build_graph, landing
from graphs.domains import host_of, registered_domain
from graphs.read import LinkTable

URLS = [f"{origin}/{path}" for origin in (
    "http://a.example.com", "https://b.example.com", "http://example.co.uk",
    "http://www.example.co.uk", "http://127.0.0.1:8801", "http://127.0.0.1:8802",
    "https://x.github.io") for path in ("", "p", "q")]

tables = st.builds(
    lambda links, crawled: (links, crawled),
    st.dictionaries(
        st.tuples(st.sampled_from(range(len(URLS))), st.sampled_from(range(len(URLS)))),
        st.tuples(st.integers(1, 5), st.booleans()), max_size=60),
    st.sets(st.sampled_from(range(len(URLS)))),
)
options = st.builds(BuildOptions, level=st.sampled_from(["page", "host", "domain"]),
                    include_uncrawled=st.booleans(), self_loops=st.booleans(),
                    nofollow=st.booleans())


def _table(links: dict, crawled: set[int], unique: bool) -> LinkTable:
    used = sorted({i for pair in links for i in pair} | crawled)
    index = {u: n for n, u in enumerate(used)}
    pairs = list(links.items())
    return LinkTable(
        urls=[URLS[u] for u in used],
        status=np.array([200 if u in crawled else -1 for u in used], dtype=np.int32),
        source=np.array([index[s] for (s, _), _ in pairs], dtype=np.int64),
        target=np.array([index[t] for (_, t), _ in pairs], dtype=np.int64),
        count=np.array([c for _, (c, _) in pairs], dtype=np.int32),
        nofollow=np.array([nf for _, (_, nf) in pairs], dtype=bool),
        unique_pairs=unique,
    )


def _fold(url: str, level: str) -> str:
    if level == "page":
        return url
    host = host_of(url)
    return host if level == "host" else registered_domain(host)


@settings(max_examples=150, deadline=None)
@given(tables, options, st.booleans())
def test_build_equals_a_plain_python_fold(data, opts, unique):
    links, crawled = data
    g = build_graph(_table(links, crawled, unique), opts)
    keep = {u for pair in links for u in pair} | crawled
    if not opts.include_uncrawled:
        keep &= crawled
    expected_nodes = Counter(_fold(URLS[u], opts.level) for u in keep)
    expected_crawled = Counter(_fold(URLS[u], opts.level) for u in keep & crawled)
    expected_edges: Counter = Counter()
    for (s, t), (count, nofollow) in links.items():
        if s not in keep or t not in keep or (nofollow and not opts.nofollow):
            continue
        a, b = _fold(URLS[s], opts.level), _fold(URLS[t], opts.level)
        if a != b or opts.self_loops:
            expected_edges[(a, b)] += count
    labels = list(g.vp.label)
    assert dict(zip(labels, g.vp.pages.a.tolist(), strict=True)) == dict(expected_nodes)
    assert {k: v for k, v in zip(labels, g.vp.crawled.a.tolist(), strict=True) if v} == dict(
        expected_crawled)
    edges = {(labels[s], labels[t]): int(w) for s, t, w in g.get_edges([g.ep.weight])}
    assert edges == dict(expected_edges)
    assert g.num_edges() == len(expected_edges)


# --- redirects ---------------------------------------------------------------------------

redirect_tables = st.builds(
    lambda links, crawled, hops: (links, crawled, {s: t for s, t in hops.items() if s != t}),
    st.dictionaries(
        st.tuples(st.sampled_from(range(len(URLS))), st.sampled_from(range(len(URLS)))),
        st.tuples(st.integers(1, 5), st.booleans()), max_size=60),
    st.sets(st.sampled_from(range(len(URLS)))),
    # Hops among a few URLs of three hosts, so that chains and loops of every length come up.
    st.dictionaries(st.sampled_from(range(9)), st.sampled_from(range(9)), max_size=9),
)


def _redirect_table(links: dict, crawled: set[int], hops: dict[int, int],
                    unique: bool) -> LinkTable:
    """A table whose redirecting URLs were fetched (status 301), like the read gives."""
    used = sorted({i for pair in links for i in pair} | crawled | set(hops) | set(hops.values()))
    index = {u: n for n, u in enumerate(used)}
    pairs = list(links.items())
    status = [200 if u in crawled else 301 if u in hops else -1 for u in used]
    return LinkTable(
        urls=[URLS[u] for u in used],
        status=np.array(status, dtype=np.int32),
        source=np.array([index[s] for (s, _), _ in pairs], dtype=np.int64),
        target=np.array([index[t] for (_, t), _ in pairs], dtype=np.int64),
        count=np.array([c for _, (c, _) in pairs], dtype=np.int32),
        nofollow=np.array([nf for _, (_, nf) in pairs], dtype=bool),
        redirect_source=np.array([index[s] for s in hops], dtype=np.int64),
        redirect_target=np.array([index[t] for t in hops.values()], dtype=np.int64),
        unique_pairs=unique,
    )


def _landed(u: int, hops: dict[int, int]) -> int:
    """Where u's redirect chain ends; u itself when the chain runs into a loop."""
    seen = {u}
    v = u
    while v in hops:
        v = hops[v]
        if v in seen:
            return u
        seen.add(v)
    return v


def _expected(links: dict, crawled: set[int], hops: dict[int, int], opts: BuildOptions):
    """Nodes (label -> pages), crawled counts, edges (label pair -> weight), redirect edges."""
    used = {i for pair in links for i in pair} | crawled | set(hops) | set(hops.values())
    fetched = crawled | set(hops)
    fold = opts.fold_redirects
    linked = {i for pair in links for i in pair}
    # Folded: what did not redirect, and what redirected into a loop if it is linked to.
    keep = {u for u in used
            if not fold or u not in hops or (_landed(u, hops) == u and u in linked)}
    if not opts.include_uncrawled:
        keep &= fetched
    nodes = Counter(_fold(URLS[u], opts.level) for u in keep)
    crawled_counts = Counter(_fold(URLS[u], opts.level) for u in keep & fetched)
    edges: Counter = Counter()
    redirect_edges = set()
    land = (lambda u: _landed(u, hops)) if fold else (lambda u: u)
    candidates = [(land(s), land(t), count, nofollow, False)
                  for (s, t), (count, nofollow) in links.items()]
    if not fold:
        candidates += [(s, t, 1, False, True) for s, t in hops.items()]
    for s, t, count, nofollow, is_hop in candidates:
        if s not in keep or t not in keep or (nofollow and not opts.nofollow):
            continue
        a, b = _fold(URLS[s], opts.level), _fold(URLS[t], opts.level)
        if a != b or opts.self_loops:
            edges[(a, b)] += count
            if is_hop:
                redirect_edges.add((a, b))
    return dict(nodes), dict(crawled_counts), dict(edges), redirect_edges


redirect_options = st.builds(BuildOptions, level=st.sampled_from(["page", "host", "domain"]),
                             include_uncrawled=st.booleans(), self_loops=st.booleans(),
                             nofollow=st.booleans(), fold_redirects=st.booleans())


def _graph_sets(g):
    labels = list(g.vp.label)
    nodes = dict(zip(labels, g.vp.pages.a.tolist(), strict=True))
    crawled = {k: v for k, v in zip(labels, g.vp.crawled.a.tolist(), strict=True) if v}
    edges = {(labels[s], labels[t]): int(w) for s, t, w in g.get_edges([g.ep.weight])}
    redirects = ({(labels[s], labels[t]) for s, t, r in g.get_edges([g.ep.redirect]) if r}
                 if "redirect" in g.ep else set())
    return nodes, crawled, edges, redirects


@settings(max_examples=200, deadline=None)
@given(redirect_tables, redirect_options, st.booleans())
def test_redirect_folding_equals_a_plain_python_fold(data, opts, unique):
    links, crawled, hops = data
    g = build_graph(_redirect_table(links, crawled, hops, unique), opts)
    assert _graph_sets(g) == _expected(links, crawled, hops, opts)
    assert ("redirect" in g.ep) == (not opts.fold_redirects)


A, A_SLASH, HTTPS_A = "http://x.test/a", "http://x.test/a/", "https://x.test/a/"
APEX, WWW = "http://x.test/", "https://www.x.test/"
HOME, OFFSITE = "https://www.x.test/home", "https://elsewhere.test/landing"


def _site(urls: list[str], links: list[tuple[str, str, int]],
           hops: dict[str, str], crawled: set[str]) -> LinkTable:
    index = {u: i for i, u in enumerate(urls)}
    return LinkTable(
        urls=urls,
        status=np.array([200 if u in crawled else 301 if u in hops else -1 for u in urls],
                        dtype=np.int32),
        source=np.array([index[s] for s, _, _ in links], dtype=np.int64),
        target=np.array([index[t] for _, t, _ in links], dtype=np.int64),
        count=np.array([c for _, _, c in links], dtype=np.int32),
        nofollow=np.zeros(len(links), dtype=bool),
        redirect_source=np.array([index[s] for s in hops], dtype=np.int64),
        redirect_target=np.array([index[t] for t in hops.values()], dtype=np.int64),
        unique_pairs=True,
    )


def test_a_chain_folds_to_where_it_lands_and_merges_with_direct_links():
    # http://x.test/a -> http://x.test/a/ -> https://x.test/a/, which is also linked directly.
    urls = [HOME, A, A_SLASH, HTTPS_A]
    table = _site(urls, [(HOME, A, 2), (HOME, HTTPS_A, 1), (HTTPS_A, A, 1)],
                   {A: A_SLASH, A_SLASH: HTTPS_A}, {HOME, HTTPS_A})
    assert landing(table).tolist() == [0, 3, 3, 3]
    nodes, crawled, edges, redirects = _graph_sets(build_graph(table, BuildOptions()))
    assert nodes == {HOME: 1, HTTPS_A: 1} and crawled == nodes
    assert edges == {(HOME, HTTPS_A): 3} and not redirects  # the self-loop is dropped
    _, _, edges, _ = _graph_sets(build_graph(table, BuildOptions(self_loops=True)))
    assert edges == {(HOME, HTTPS_A): 3, (HTTPS_A, HTTPS_A): 1}


def test_fold_off_keeps_each_hop_as_a_redirect_edge():
    urls = [HOME, A, A_SLASH, HTTPS_A]
    table = _site(urls, [(HOME, A, 2), (HOME, HTTPS_A, 1)],
                   {A: A_SLASH, A_SLASH: HTTPS_A}, {HOME, HTTPS_A})
    nodes, crawled, edges, redirects = _graph_sets(
        build_graph(table, BuildOptions(fold_redirects=False)))
    assert nodes == dict.fromkeys(urls, 1) and crawled == nodes  # the hops were fetched
    assert edges == {(HOME, A): 2, (HOME, HTTPS_A): 1, (A, A_SLASH): 1, (A_SLASH, HTTPS_A): 1}
    assert redirects == {(A, A_SLASH), (A_SLASH, HTTPS_A)}
    # At the host level the hops are one edge each way they cross a host, merged with links.
    table = _site([HOME, APEX, WWW], [(HOME, APEX, 1), (HOME, WWW, 4)], {APEX: WWW},
                   {HOME, WWW})
    g = build_graph(table, BuildOptions(level="host", fold_redirects=False))
    assert _graph_sets(g)[2:] == ({("www.x.test", "x.test"): 1, ("x.test", "www.x.test"): 1},
                                  {("x.test", "www.x.test")})
    g = build_graph(table, BuildOptions(level="host"))
    assert _graph_sets(g) == ({"www.x.test": 2}, {"www.x.test": 2}, {}, set())


def test_a_redirect_to_an_offsite_url_is_a_link_to_that_url():
    table = _site([HOME, A, OFFSITE], [(HOME, A, 1)], {A: OFFSITE}, {HOME})
    nodes, crawled, edges, _ = _graph_sets(build_graph(table, BuildOptions()))
    assert nodes == {HOME: 1, OFFSITE: 1} and crawled == {HOME: 1}
    assert edges == {(HOME, OFFSITE): 1}
    # Where it landed was never fetched: without uncrawled nodes, the link goes with it.
    nodes, _, edges, _ = _graph_sets(build_graph(table, BuildOptions(include_uncrawled=False)))
    assert nodes == {HOME: 1} and edges == {}
    g = build_graph(table, BuildOptions(level="domain"))
    assert _graph_sets(g)[2] == {("x.test", "elsewhere.test"): 1}


def test_a_redirect_loop_lands_nowhere_and_stays_as_it_is():
    # a -> a/ -> a (a loop), and https://x.test/a/ -> a/ runs into it.
    urls = [HOME, A, A_SLASH, HTTPS_A]
    table = _site(urls, [(HOME, A, 1), (HOME, HTTPS_A, 1)],
                   {A: A_SLASH, A_SLASH: A, HTTPS_A: A_SLASH}, {HOME})
    assert landing(table).tolist() == [0, 1, 2, 3]
    nodes, _, edges, _ = _graph_sets(build_graph(table, BuildOptions()))
    assert nodes == {HOME: 1, A: 1, HTTPS_A: 1}  # a/ is neither linked to nor a page
    assert edges == {(HOME, A): 1, (HOME, HTTPS_A): 1}


def test_long_chains_land_in_few_rounds():
    n = 5000
    urls = [f"http://x.test/{i}" for i in range(n)]
    hops = {urls[i]: urls[i + 1] for i in range(n - 1)}
    table = _site(urls, [(urls[-1], urls[0], 1)], hops, {urls[-1]})
    assert (landing(table) == n - 1).all()
    assert _graph_sets(build_graph(table, BuildOptions(self_loops=True)))[2] == {
        (urls[-1], urls[-1]): 1}
