"""The diff of two finished graph builds of the same level: what changed between two crawls.

`diff_builds(home, a, b, metric=..., top=..., limit=...)` loads both graph
files and answers a `GraphDiff`: nodes and edges added and removed (full
counts, lists bounded by `limit`), the `top` nodes whose metric moved most
(by value and by rank), and the weak components that merged or split.
`diff_rows` flattens it into CSV rows.

A node is the same node in both builds when its label (URL, host or domain)
is the same; node ids are per build. The work is numpy over id arrays:
labels of both builds get one global id each (one `np.unique` over both
label lists: O((n_a + n_b) log(n_a + n_b)) string comparisons), an edge is
the int64 `source * N + target` of global ids, and the added, removed and
common edges and nodes are `np.isin` set operations (sorting, O(m log m)).
Components are `label_components` of each graph (O(n + m)), mapped through
the common nodes with one `np.unique` of (component in A, component in B)
pairs. Memory: the labels of both graphs as Python strings plus a few int64
arrays per node and edge. No Python loop runs over nodes or edges except to
read the labels out of the graph files and to format the bounded lists.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import graph_tool as gt
import graph_tool.topology as gtt
import msgspec
import numpy as np

from graphs import store
from graphs.errors import InvalidGraphRequest
from graphs.exports import label_array
from graphs.models import METRICS, NODE_COLUMNS

MAX_LIMIT = 10_000
MAX_TOP = 1_000
MAX_PARTS = 20
# Columns every build has (no metric computes them).
_ALWAYS = ("pages", "crawled")


class EdgeChange(msgspec.Struct):
    source: str
    target: str


class NodeDiff(msgspec.Struct, kw_only=True):
    a: int
    b: int
    common: int
    added: int
    removed: int
    added_labels: list[str]
    removed_labels: list[str]


class EdgeDiff(msgspec.Struct, kw_only=True):
    a: int
    b: int
    common: int
    added: int
    removed: int
    added_edges: list[EdgeChange]
    removed_edges: list[EdgeChange]


class Mover(msgspec.Struct, kw_only=True):
    """A node of both builds: its metric in each, the change, and its rank (1 = highest)."""

    label: str
    a: float
    b: float
    delta: float
    rank_a: int
    rank_b: int
    rank_change: int  # rank_a - rank_b: positive when the node moved up


class MetricDiff(msgspec.Struct, kw_only=True):
    name: str
    movers: list[Mover]
    rank_movers: list[Mover]


class ComponentPart(msgspec.Struct, kw_only=True):
    component: int
    size: int
    shared: int  # nodes of both builds in this part
    example: str  # the smallest label of the component


class ComponentChange(msgspec.Struct, kw_only=True):
    component: int
    size: int
    example: str
    parts_count: int
    parts: list[ComponentPart]


class ComponentDiff(msgspec.Struct, kw_only=True):
    a: int
    b: int
    merges: int  # components of B that hold common nodes of two or more components of A
    splits: int  # components of A whose common nodes went to two or more components of B
    merged: list[ComponentChange]  # a component of B, its parts: the components of A
    split: list[ComponentChange]  # a component of A, its parts: the components of B


class GraphDiff(msgspec.Struct, kw_only=True):
    a: uuid.UUID
    b: uuid.UUID
    level: str
    limit: int
    nodes: NodeDiff
    edges: EdgeDiff
    components: ComponentDiff
    metric: MetricDiff | None = None


def check_request(a: dict[str, Any], b: dict[str, Any], metric: str | None,
                  top: int, limit: int) -> None:
    """InvalidGraphRequest (422) for mixed levels, a bad metric or out-of-range bounds."""
    store.require_done(a)
    store.require_done(b)
    if a["level"] != b["level"]:
        raise InvalidGraphRequest(
            f"Build {a['id']} is a {a['level']} graph and build {b['id']} a {b['level']} graph; "
            "only builds of the same level can be compared.",
            hint="Compare two builds of one level (build the other level of one crawl first).")
    if not 1 <= top <= MAX_TOP:
        raise InvalidGraphRequest(f"top={top} is out of range.", hint=f"Use 1..{MAX_TOP}.")
    if not 0 <= limit <= MAX_LIMIT:
        raise InvalidGraphRequest(f"limit={limit} is out of range.", hint=f"Use 0..{MAX_LIMIT}.")
    if metric is None:
        return
    if metric not in NODE_COLUMNS:
        raise InvalidGraphRequest(f"Unknown metric {metric!r}.",
                                  hint=f"Use a node column: {', '.join(NODE_COLUMNS)}.")
    owner = next((m for m, cols in METRICS.items() if metric in cols), None)
    missing = [x["id"] for x in (a, b) if owner is not None and owner not in x["metrics"]]
    if missing:
        raise InvalidGraphRequest(
            f"Build {', '.join(map(str, missing))} did not compute {owner!r}, "
            f"so {metric!r} cannot be compared.",
            hint=f"Pick a metric both builds computed, or build again with {owner!r}.")


def diff_builds(home: Path, a: dict[str, Any], b: dict[str, Any], *,
                metric: str | None = "pagerank", top: int = 20, limit: int = 100) -> GraphDiff:
    """Compare two finished builds (rows of `store.get_build`); see the module docstring."""
    check_request(a, b, metric, top, limit)
    ga, gb = store.load_graph(home, a), store.load_graph(home, b)
    return diff_graphs(ga, gb, a["id"], b["id"], a["level"], metric=metric, top=top, limit=limit)


def diff_graphs(ga: gt.Graph, gb: gt.Graph, a_id: uuid.UUID, b_id: uuid.UUID, level: str, *,
                metric: str | None = "pagerank", top: int = 20, limit: int = 100) -> GraphDiff:
    """The diff of two loaded graphs (node identity: `vp.label`)."""
    if metric is not None and (metric not in ga.vp or metric not in gb.vp):
        raise InvalidGraphRequest(f"A graph has no {metric!r} values.",
                                  hint="Pick a metric both builds computed.")
    la, lb = label_array(ga), label_array(gb)
    names, inverse = np.unique(np.concatenate([la, lb]), return_inverse=True)
    n = len(names)
    ida, idb = inverse[: len(la)].astype(np.int64), inverse[len(la):].astype(np.int64)
    pos_a, pos_b = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    pos_a[ida], pos_b[idb] = np.arange(len(la)), np.arange(len(lb))
    in_a, in_b = pos_a >= 0, pos_b >= 0
    common = np.flatnonzero(in_a & in_b)
    added, removed = np.flatnonzero(in_b & ~in_a), np.flatnonzero(in_a & ~in_b)
    nodes = NodeDiff(a=len(la), b=len(lb), common=len(common), added=len(added),
                     removed=len(removed), added_labels=names[added[:limit]].tolist(),
                     removed_labels=names[removed[:limit]].tolist())
    edges = _edge_diff(ga, gb, ida, idb, names, limit)
    components = _component_diff(ga, gb, pos_a, pos_b, common, names, top)
    moved = None
    if metric is not None:
        moved = _metric_diff(ga.vp[metric].a, gb.vp[metric].a, pos_a, pos_b, common, names,
                             metric, top)
    return GraphDiff(a=a_id, b=b_id, level=level, limit=limit, nodes=nodes, edges=edges,
                     components=components, metric=moved)


def _edge_keys(g: gt.Graph, ids: np.ndarray, n: int) -> np.ndarray:
    e = g.get_edges()
    return np.unique(ids[e[:, 0]] * n + ids[e[:, 1]]) if len(e) else np.empty(0, np.int64)


def _edge_list(keys: np.ndarray, n: int, names: np.ndarray) -> list[EdgeChange]:
    return [EdgeChange(s, t) for s, t in zip(names[keys // n].tolist(),
                                             names[keys % n].tolist(), strict=True)]


def _edge_diff(ga: gt.Graph, gb: gt.Graph, ida: np.ndarray, idb: np.ndarray,
               names: np.ndarray, limit: int) -> EdgeDiff:
    n = len(names)
    ka, kb = _edge_keys(ga, ida, n), _edge_keys(gb, idb, n)
    b_in_a = np.isin(kb, ka, assume_unique=True)
    a_in_b = np.isin(ka, kb, assume_unique=True)
    added, removed = kb[~b_in_a], ka[~a_in_b]
    return EdgeDiff(a=len(ka), b=len(kb), common=int(b_in_a.sum()), added=len(added),
                    removed=len(removed), added_edges=_edge_list(added[:limit], n, names),
                    removed_edges=_edge_list(removed[:limit], n, names))


def _ranks(values: np.ndarray) -> np.ndarray:
    """Competition ranks, highest first: 1 + the number of strictly greater values."""
    ordered = np.sort(values)
    return len(values) - np.searchsorted(ordered, values, side="right") + 1


def _metric_diff(va: np.ndarray, vb: np.ndarray, pos_a: np.ndarray, pos_b: np.ndarray,
                 common: np.ndarray, names: np.ndarray, metric: str, top: int) -> MetricDiff:
    va, vb = np.nan_to_num(va.astype(np.float64)), np.nan_to_num(vb.astype(np.float64))
    ra, rb = _ranks(va)[pos_a[common]], _ranks(vb)[pos_b[common]]
    xa, xb = va[pos_a[common]], vb[pos_b[common]]
    delta, change = xb - xa, ra - rb

    def pick(key: np.ndarray) -> list[Mover]:
        moved = np.flatnonzero(key != 0)  # a node that did not move is no mover
        order = moved[np.lexsort((common[moved], -key[moved]))[:top]]  # largest, then by label
        return [Mover(label=label, a=a, b=b, delta=d, rank_a=r, rank_b=s, rank_change=c)
                for label, a, b, d, r, s, c in zip(
                    names[common[order]].tolist(), xa[order].tolist(), xb[order].tolist(),
                    delta[order].tolist(), ra[order].tolist(), rb[order].tolist(),
                    change[order].tolist(), strict=True)]

    return MetricDiff(name=metric, movers=pick(np.abs(delta)),
                      rank_movers=pick(np.abs(change).astype(np.float64)))


def _components(g: gt.Graph, pos: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, ...]:
    """(component of each vertex, size of each component, smallest label of each)."""
    comp, sizes = gtt.label_components(g, directed=False)
    comp = comp.a.astype(np.int64)
    ids = np.empty(len(comp), np.int64)
    present = np.flatnonzero(pos >= 0)
    ids[pos[present]] = present  # vertex -> global id (sorted like the labels)
    first = np.full(len(sizes), len(names), np.int64)
    np.minimum.at(first, comp, ids)
    return comp, np.asarray(sizes, np.int64), names[np.minimum(first, len(names) - 1)]


def _changes(whole: np.ndarray, part: np.ndarray, shared: np.ndarray, sizes_whole: np.ndarray,
             ex_whole: np.ndarray, sizes_part: np.ndarray, ex_part: np.ndarray,
             top: int) -> tuple[int, list[ComponentChange]]:
    """Components of `whole` that hold two or more components of `part` (sorted pairs)."""
    starts = np.flatnonzero(np.r_[True, whole[1:] != whole[:-1]])
    counts = np.diff(np.r_[starts, len(whole)])
    many = np.flatnonzero(counts >= 2)
    many = many[np.lexsort((whole[starts[many]], -sizes_whole[whole[starts[many]]]))]
    out = []
    for i in many[:top].tolist():
        lo, hi = starts[i], starts[i] + counts[i]
        order = lo + np.lexsort((part[lo:hi], -shared[lo:hi]))[:MAX_PARTS]
        c = int(whole[lo])
        out.append(ComponentChange(
            component=c, size=int(sizes_whole[c]), example=str(ex_whole[c]),
            parts_count=int(counts[i]),
            parts=[ComponentPart(component=p, size=int(sizes_part[p]), shared=s,
                                 example=str(ex_part[p]))
                   for p, s in zip(part[order].tolist(), shared[order].tolist(), strict=True)]))
    return len(many), out


def _component_diff(ga: gt.Graph, gb: gt.Graph, pos_a: np.ndarray, pos_b: np.ndarray,
                    common: np.ndarray, names: np.ndarray, top: int) -> ComponentDiff:
    ca, sa, ea = _components(ga, pos_a, names)
    cb, sb, eb = _components(gb, pos_b, names)
    k = max(len(sb), 1)
    pairs, shared = np.unique(ca[pos_a[common]] * k + cb[pos_b[common]], return_counts=True)
    pa, pb = pairs // k, pairs % k
    splits, split = _changes(pa, pb, shared, sa, ea, sb, eb, top)  # sorted by A, then B
    order = np.lexsort((pa, pb))
    merges, merged = _changes(pb[order], pa[order], shared[order], sb, eb, sa, ea, top)
    return ComponentDiff(a=len(sa), b=len(sb), merges=merges, splits=splits,
                         merged=merged, split=split)


CSV_HEADER = ("change", "label", "target", "a", "b", "delta", "rank_a", "rank_b")


def diff_rows(d: GraphDiff) -> list[tuple[Any, ...]]:
    """The diff as CSV rows (`CSV_HEADER`): one per listed node, edge, mover and component part."""
    rows: list[tuple[Any, ...]] = []
    rows += [("node_added", x, "", "", "", "", "", "") for x in d.nodes.added_labels]
    rows += [("node_removed", x, "", "", "", "", "", "") for x in d.nodes.removed_labels]
    rows += [("edge_added", e.source, e.target, "", "", "", "", "") for e in d.edges.added_edges]
    rows += [("edge_removed", e.source, e.target, "", "", "", "", "")
             for e in d.edges.removed_edges]
    if d.metric is not None:
        for kind, movers in (("mover", d.metric.movers), ("rank_mover", d.metric.rank_movers)):
            rows += [(kind, m.label, d.metric.name, m.a, m.b, m.delta, m.rank_a, m.rank_b)
                     for m in movers]
    for kind, changes in (("merged", d.components.merged), ("split", d.components.split)):
        for c in changes:
            rows += [(kind, c.example, p.example, c.size, p.size, p.shared, c.component,
                      p.component) for p in c.parts]
    return rows
