"""Turn a `LinkTable` into a graph-tool graph at the page, host or domain level.

Node ids come from array operations: a node -> group map (identity for pages,
`np.unique(..., return_inverse=True)` over hosts or registered domains),
fancy indexing of the link endpoints through it, and one `np.unique` over
`source * n + target` keys that merges parallel links and sums their counts
into the edge weight. The only per-item Python work is `host_of` once per
distinct URL and `registered_domain` once per distinct host.

Redirects fold the same way, before the level's grouping: `landing(table)`
maps every node to the node its redirect chain lands on (itself when it did
not redirect), by pointer jumping (`land = land[land]`, doubling the chain
length covered each time); a chain that runs into a loop lands nowhere and its
URLs stay themselves. With `fold_redirects` a URL that redirected is no node
(one whose chain loops is, if a link points at it): its links point where it
landed, and so do its host's and domain's.
Without it, each hop is an edge of its own (weight 1, `ep.redirect` true).

Canonicals fold after the redirects, with `fold_canonical` (off by default):
`canonical_landing(table, land)` follows each node from where it landed to
the canonical URL its page declares, to where that lands, and on to that
page's canonical (pointer jumping again); a chain that runs into a loop stops
where its redirects landed. A page folded into its canonical is no node, as a
URL that redirected is none. Without it, the page level carries
`vp.canonical`: the canonical URL each page declares (empty for none).

The graph carries `vp.label` (URL, host or domain), `vp.pages` (pages folded
into the node), `vp.crawled` (of which fetched), `ep.weight` (number of
links, i.e. `<a>` elements, it stands for, plus one per redirect hop) and,
when redirects are not folded, `ep.redirect` (the edge stands for a redirect,
maybe as well as links). The page level also has `vp.discovered`: how the
crawl first reached the page (`start`, `link`, `sitemap`; empty for a URL it
did not fetch, or a crawl from before it was recorded), so a page found only
through a sitemap is told apart from one nobody links to by mistake, without
an edge made up for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import graph_tool as gt
import numpy as np

from graphs.domains import domains_of, hosts_of
from graphs.read import DISCOVERY, LinkTable


@dataclass(frozen=True)
class BuildOptions:
    """How a `LinkTable` becomes a graph."""

    level: str = "page"
    include_uncrawled: bool = True
    self_loops: bool = False
    nofollow: bool = True
    fold_redirects: bool = True
    fold_canonical: bool = False


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


def _follow(hop: np.ndarray, stay: np.ndarray) -> np.ndarray:
    """Where following `hop` from each node ends; `stay[i]` for a node whose chain loops."""
    land = hop
    # After k rounds land[i] is 2**k hops from i (or the chain's end), and no
    # chain is longer than the number of nodes.
    for _ in range(max(1, len(hop).bit_length())):
        further = land[land]
        if np.array_equal(further, land):
            break
        land = further
    looping = hop[land] != land
    if looping.any():
        land = np.where(looping, stay, land)
    return land


def landing(table: LinkTable) -> np.ndarray:
    """The node each node's redirect chain lands on: itself unless it redirected.

    A chain that runs into a loop (`a -> b -> a`) lands nowhere: every node on
    it and leading into it maps to itself.
    """
    hop = np.arange(table.node_count, dtype=np.int64)
    hop[table.redirect_source] = table.redirect_target
    return _follow(hop, np.arange(table.node_count, dtype=np.int64))


def canonical_landing(table: LinkTable, land: np.ndarray) -> np.ndarray:
    """The node each node folds into: from where it landed (`land`), through canonicals.

    One step goes from a node's landing to the canonical its page declares and
    to where that lands; a chain of canonicals is followed to its end, and one
    that runs into a loop (`a -> b -> a`) stays where `land` put it.
    """
    canonical = np.arange(table.node_count, dtype=np.int64)
    canonical[table.canonical_source] = table.canonical_target
    return _follow(land[canonical[land]], land)


def _nodes(table: LinkTable, options: BuildOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """Which URLs are nodes, and where each URL folds (None: nothing folds)."""
    fold_canonical = options.fold_canonical and table.canonical_count > 0
    fold = (options.fold_redirects and table.redirect_count > 0) or fold_canonical
    keep = np.ones(table.node_count, dtype=bool)
    if not options.include_uncrawled:
        keep = table.status >= 0
    linked = np.zeros(table.node_count, dtype=bool)
    linked[table.source] = True
    linked[table.target] = True
    land = None
    if fold:
        land = (landing(table) if options.fold_redirects
                else np.arange(table.node_count, dtype=np.int64))
        if fold_canonical:
            land = canonical_landing(table, land)
            if not options.include_uncrawled:
                # A canonical nobody fetched is the node of the fetched pages folded into it.
                keep[land[table.canonical_source]] = True
        # A URL that redirected is no node, unless its chain runs into a loop: then
        # it stays as it is if a link points at it (otherwise no link or page has it).
        landed = land == np.arange(table.node_count)
        redirected = np.zeros(table.node_count, dtype=bool)
        if options.fold_redirects:
            redirected[table.redirect_source] = True
        keep &= landed & (~redirected | linked)
    if table.canonical_count:
        # A URL that is only some page's canonical (not fetched, linked or redirected
        # through: what else the read takes is one of these) is a node only if pages
        # fold into it; a canonical that lost to another job's is none.
        only = (table.status < 0) & ~linked
        only[table.redirect_source] = only[table.redirect_target] = False
        if fold_canonical:
            only[land[table.canonical_source]] = False
        keep &= ~only
    return keep, land


def build_graph(table: LinkTable, options: BuildOptions) -> gt.Graph:
    """Build the directed, weighted graph of `table` at `options.level`."""
    keep, land = _nodes(table, options)
    fold = land is not None
    kept = np.flatnonzero(keep)
    kept_urls = [table.urls[i] for i in kept.tolist()] if not keep.all() else table.urls
    names, group_of_kept = _groups(kept_urls, options.level)
    n = len(names)

    group = np.full(table.node_count, -1, dtype=np.int64)
    group[kept] = group_of_kept
    if fold:
        group = group[land]  # a URL that redirected is where it landed
    source = group[table.source]
    target = group[table.target]
    count = table.count.astype(np.int64)
    mask = (source >= 0) & (target >= 0)
    if not options.nofollow:
        mask &= ~table.nofollow
    hops = not options.fold_redirects and table.redirect_count > 0
    if hops:
        # Each hop is an edge of its own, counted once.
        source = np.concatenate((source, group[table.redirect_source]))
        target = np.concatenate((target, group[table.redirect_target]))
        count = np.concatenate((count, np.ones(table.redirect_count, dtype=np.int64)))
        redirect = np.zeros(len(source), dtype=bool)
        redirect[table.link_count:] = True
        mask = np.concatenate((mask, np.ones(table.redirect_count, dtype=bool)))
        mask &= (source >= 0) & (target >= 0)
    if not options.self_loops:
        mask &= source != target

    edge_redirect = None
    if options.level == "page" and table.unique_pairs and not fold and not hops:
        # No pair twice: the links are the edges, written straight into their
        # columns (no masked copies beside a stacked one: 1.6 GB each at 100
        # million links).
        edges = np.empty((int(np.count_nonzero(mask)), 2), dtype=np.int64)
        np.compress(mask, source, out=edges[:, 0])
        np.compress(mask, target, out=edges[:, 1])
        weight = np.compress(mask, count)
    else:
        source, target, count = source[mask], target[mask], count[mask]
        # Merge parallel links (several pages of one host linking to another, one
        # link found by several jobs, links to URLs that landed on one page, a link
        # and a redirect) into one edge weighted by their sum.
        keys, inverse = np.unique(source * max(n, 1) + target, return_inverse=True)
        inverse = inverse.ravel()
        weight = np.bincount(inverse, weights=count, minlength=len(keys))
        weight = weight.astype(np.int64)
        edges = np.empty((len(keys), 2), dtype=np.int64)
        np.divmod(keys, max(n, 1), out=(edges[:, 0], edges[:, 1]))
        if hops:
            edge_redirect = np.bincount(inverse, weights=redirect[mask],
                                        minlength=len(keys)) > 0
        del keys, inverse

    del source, target, count, mask  # freed before the graph stores the edges
    g = gt.Graph(directed=True)
    g.add_vertex(n)
    g.add_edge_list(edges)
    del edges
    g.vp.label = g.new_vp("string", vals=names.tolist())
    g.vp.pages = g.new_vp("int32_t")
    g.vp.pages.a = np.bincount(group_of_kept, minlength=n)
    g.vp.crawled = g.new_vp("int32_t")
    fetched = (table.status[kept] >= 0).astype(np.int64)
    g.vp.crawled.a = np.bincount(group_of_kept, weights=fetched, minlength=n)
    g.ep.weight = g.new_ep("int64_t")
    g.ep.weight.a = weight
    if not options.fold_redirects:
        g.ep.redirect = g.new_ep("bool")
        if edge_redirect is not None:
            g.ep.redirect.a = edge_redirect
    if options.level == "page":
        codes = (table.discovered[kept] if len(table.discovered) == table.node_count
                 else np.zeros(len(kept), dtype=np.int8))
        known = np.flatnonzero(codes)
        g.vp.discovered = _sparse_strings(
            g, known, np.array(DISCOVERY, dtype=object)[codes[known]].tolist())
        if not options.fold_canonical:
            g.vp.canonical = _sparse_strings(g, *_declared(table, kept))
    g.gp.level = g.new_gp("string", options.level)
    g.gp.fold_redirects = g.new_gp("bool", options.fold_redirects)
    g.gp.fold_canonical = g.new_gp("bool", options.fold_canonical)
    return g


def _sparse_strings(g: gt.Graph, nodes: np.ndarray, values: list[str]) -> gt.VertexPropertyMap:
    """A string property, "" but at `nodes`: graph-tool sets strings one at a time
    (about 1 us each, 10 s for 10 million nodes), so the empty ones are left as made."""
    prop = g.new_vp("string")
    for node, value in zip(nodes.tolist(), values, strict=True):
        prop[node] = value
    return prop


def _declared(table: LinkTable, kept: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The kept nodes (positions in `kept`) whose page declares a canonical URL, and it."""
    if not table.canonical_count:
        return np.empty(0, dtype=np.int64), []
    canonical = np.full(table.node_count, -1, dtype=np.int64)
    canonical[table.canonical_source] = table.canonical_target
    declared = canonical[kept]
    nodes = np.flatnonzero(declared >= 0)
    return nodes, [table.urls[c] for c in declared[nodes].tolist()]
