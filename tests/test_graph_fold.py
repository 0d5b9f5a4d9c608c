"""Property tests of the array-based build against a plain-Python fold (no database)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs.build import BuildOptions, build_graph
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
