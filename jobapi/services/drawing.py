"""A finished build's graph in the compact shape the console draws.

`drawing(g, limit)` keeps every node when the graph has at most `limit`,
else the `limit` nodes of highest PageRank (in-degree when the build has no
PageRank) and the edges among them, and says so (`truncated`). Columns are
arrays, one per node attribute the build computed, and the edges one flat
list of node indices (source, target, source, target ...): a 100,000-edge
graph is a few hundred kilobytes of JSON, read by the browser in one parse.
"""

from __future__ import annotations

import uuid

import msgspec
import numpy as np

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 50_000
COLUMNS = ("pagerank", "in_degree", "out_degree", "kcore", "community", "component",
           "strong_component", "crawled", "pages")


class Drawing(msgspec.Struct, kw_only=True):
    """The nodes and edges to draw; `truncated` when only the top nodes are kept."""

    build_id: uuid.UUID
    level: str
    node_count: int
    edge_count: int
    truncated: bool
    ranked_by: str
    labels: list[str]
    columns: dict[str, list[float]]  # integer metrics (degrees, k-core) as whole numbers
    edges: list[int]


def drawing(g, build_id: uuid.UUID, level: str, limit: int) -> Drawing:
    """The graph `g` (graph-tool), cut to its top `limit` nodes if it has more."""
    n = g.num_vertices()
    ranked_by = "pagerank" if "pagerank" in g.vp else "in_degree"
    rank = g.vp[ranked_by].a if ranked_by in g.vp else g.get_in_degrees(g.get_vertices())
    if n > limit:
        keep = np.sort(np.argsort(-np.asarray(rank), kind="stable")[:limit])
    else:
        keep = np.arange(n)
    index = np.full(n, -1, dtype=np.int64)
    index[keep] = np.arange(len(keep))
    edges = g.get_edges()[:, :2] if g.num_edges() else np.zeros((0, 2), dtype=np.int64)
    mapped = index[edges]
    mapped = mapped[(mapped >= 0).all(axis=1)]
    label = g.vp.label
    columns = {name: g.vp[name].a[keep].tolist() for name in COLUMNS if name in g.vp}
    return Drawing(build_id=build_id, level=level, node_count=n, edge_count=g.num_edges(),
                   truncated=len(keep) < n, ranked_by=ranked_by,
                   labels=[label[int(v)] for v in keep], columns=columns,
                   edges=mapped.ravel().tolist())
