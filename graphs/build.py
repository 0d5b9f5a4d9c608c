"""Turn a `LinkTable` into a graph-tool graph at the page, host or domain level.

Node ids come from array operations: a node -> group map (identity for pages,
`np.unique(..., return_inverse=True)` over hosts or registered domains),
fancy indexing of the link endpoints through it, and one `np.unique` over
`source * n + target` keys that merges parallel links and sums their counts
into the edge weight. The only per-item Python work is `host_of` once per
distinct URL and `registered_domain` once per distinct host.

The graph carries `vp.label` (URL, host or domain), `vp.pages` (pages folded
into the node), `vp.crawled` (of which fetched) and `ep.weight` (number of
links, i.e. `<a>` elements, it stands for).
"""

from __future__ import annotations

from dataclasses import dataclass

import graph_tool as gt
import numpy as np

from graphs.domains import domains_of, hosts_of
from graphs.read import LinkTable


@dataclass(frozen=True)
class BuildOptions:
    """How a `LinkTable` becomes a graph."""

    level: str = "page"
    include_uncrawled: bool = True
    self_loops: bool = False
    nofollow: bool = True


def _groups(labels: list[str], level: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (group label per group, group id per input label)."""
    if level == "page":
        return np.array(labels, dtype=object), np.arange(len(labels), dtype=np.int64)
    hosts = hosts_of(labels)
    host_names, host_of_node = np.unique(hosts, return_inverse=True)
    if level == "host":
        return host_names.astype(object), host_of_node.astype(np.int64)
    domain_names, domain_of_host = np.unique(domains_of(host_names), return_inverse=True)
    return domain_names.astype(object), domain_of_host[host_of_node].astype(np.int64)


def build_graph(table: LinkTable, options: BuildOptions) -> gt.Graph:
    """Build the directed, weighted graph of `table` at `options.level`."""
    keep = np.ones(table.node_count, dtype=bool)
    if not options.include_uncrawled:
        keep = table.status >= 0
    kept = np.flatnonzero(keep)
    kept_urls = [table.urls[i] for i in kept.tolist()] if not keep.all() else table.urls
    names, group_of_kept = _groups(kept_urls, options.level)
    n = len(names)

    group = np.full(table.node_count, -1, dtype=np.int64)
    group[kept] = group_of_kept
    source = group[table.source]
    target = group[table.target]
    mask = (source >= 0) & (target >= 0)
    if not options.nofollow:
        mask &= ~table.nofollow
    if not options.self_loops:
        mask &= source != target
    source, target, count = source[mask], target[mask], table.count[mask].astype(np.int64)

    if options.level == "page" and table.unique_pairs:
        edges = np.column_stack((source, target))
        weight = count
    else:
        # Merge parallel links (several pages of one host linking to another, or
        # one link found by several jobs) into one edge weighted by their sum.
        keys, inverse = np.unique(source * max(n, 1) + target, return_inverse=True)
        weight = np.bincount(inverse.ravel(), weights=count, minlength=len(keys))
        weight = weight.astype(np.int64)
        edges = np.empty((len(keys), 2), dtype=np.int64)
        np.divmod(keys, max(n, 1), out=(edges[:, 0], edges[:, 1]))

    g = gt.Graph(directed=True)
    g.add_vertex(n)
    g.add_edge_list(edges)
    g.vp.label = g.new_vp("string", vals=names.tolist())
    g.vp.pages = g.new_vp("int32_t")
    g.vp.pages.a = np.bincount(group_of_kept, minlength=n)
    g.vp.crawled = g.new_vp("int32_t")
    fetched = (table.status[kept] >= 0).astype(np.int64)
    g.vp.crawled.a = np.bincount(group_of_kept, weights=fetched, minlength=n)
    g.ep.weight = g.new_ep("int64_t")
    g.ep.weight.a = weight
    g.gp.level = g.new_gp("string", options.level)
    return g
