"""The msgspec Structs of graph builds: the request, the build and a node row.

`GraphBuildRequest` decodes any JSON object of the right shape; `validate()`
then checks names and ranges and raises `InvalidGraphRequest` (HTTP 422) with
the list of what is allowed, so that an unknown metric gets the same clear
answer through the API, the CLI and the worker.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from graphs.errors import InvalidGraphRequest

LEVELS = ("page", "host", "domain")
# Metric name -> the graph_nodes columns it fills (graph-level metrics fill none).
METRICS: dict[str, tuple[str, ...]] = {
    "degree": ("in_degree", "out_degree", "in_weight", "out_weight"),
    "pagerank": ("pagerank",),
    "hits": ("hub", "authority"),
    "betweenness": ("betweenness",),
    "closeness": ("closeness",),
    "components": ("component", "strong_component"),
    "kcore": ("kcore",),
    "communities": ("community",),
    "reciprocity": (),
    "density": (),
}
DEFAULT_METRICS = ("degree", "pagerank", "components", "kcore", "reciprocity", "density")
NODE_COLUMNS = ("pages", "crawled") + tuple(c for cols in METRICS.values() for c in cols)
# Text attributes of a page graph's nodes: how the crawl first reached the page
# (`start`, `link`, `sitemap`) and, when canonicals are not folded, the canonical
# URL it declares; "" in the graph file for none, NULL in `graph_nodes`.
TEXT_COLUMNS = ("discovered", "canonical")
EXPORT_FORMATS = ("graphml", "gexf", "json", "csv")
BuildStatus = Literal["queued", "running", "done", "failed"]


def _invalid(message: str, hint: str) -> InvalidGraphRequest:
    return InvalidGraphRequest(message, hint=hint)


class GraphBuildRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to build from a job's links: the level, the metrics and the options."""

    level: str = "page"
    metrics: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_METRICS))
    # Also the link targets that were never fetched (external pages, the frontier's leftovers).
    include_uncrawled: bool = True
    self_loops: bool = False
    nofollow: bool = True
    # A URL that redirected is the page its chain lands on; off: a node with an edge to its target.
    fold_redirects: bool = True
    # A page that declares a canonical URL is that URL's node (after redirects fold);
    # off: its own node with the attribute `canonical`. Off by default: see docs/graphs.md.
    fold_canonical: bool = False
    damping: float = 0.85
    # Betweenness: None = exact up to `EXACT_BETWEENNESS_MAX_NODES`, then this many pivots.
    betweenness_pivots: int | None = None
    communities_seconds: float = 60.0
    # Further jobs whose links join the graph (the job in the URL comes first).
    extra_jobs: list[uuid.UUID] = msgspec.field(default_factory=list)

    def validate(self) -> GraphBuildRequest:
        """Check names and ranges; return self, or raise `InvalidGraphRequest` (422)."""
        if self.level not in LEVELS:
            raise _invalid(f"Unknown level {self.level!r}.", f"Use one of: {', '.join(LEVELS)}.")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise _invalid(
                f"Unknown metric{plural}: {', '.join(map(repr, unknown))}.",
                f"Use any of: {', '.join(METRICS)}.",
            )
        if len(set(self.metrics)) != len(self.metrics):
            raise _invalid("A metric is named twice.", "Name each metric once.")
        if not (math.isfinite(self.damping) and 0.0 < self.damping < 1.0):
            raise _invalid(f"damping={self.damping} is out of range.", "Use 0 < damping < 1.")
        if self.betweenness_pivots is not None and not 1 <= self.betweenness_pivots <= 100_000:
            raise _invalid("betweenness_pivots is out of range.", "Use 1..100000, or omit it.")
        if not (math.isfinite(self.communities_seconds) and 1 <= self.communities_seconds <= 3600):
            raise _invalid("communities_seconds is out of range.", "Use 1..3600 seconds.")
        if len(self.extra_jobs) > 100:
            raise _invalid("Too many extra_jobs.", "Build from at most 101 jobs at once.")
        return self

    def options(self) -> dict[str, Any]:
        """The build options as stored in `graph_builds.options`."""
        return {
            "include_uncrawled": self.include_uncrawled,
            "self_loops": self.self_loops,
            "nofollow": self.nofollow,
            "fold_redirects": self.fold_redirects,
            "fold_canonical": self.fold_canonical,
            "damping": self.damping,
            "betweenness_pivots": self.betweenness_pivots,
            "communities_seconds": self.communities_seconds,
        }


class GraphBuild(msgspec.Struct, kw_only=True):
    """A graph build as the API returns it."""

    id: uuid.UUID
    status: BuildStatus
    level: str
    jobs: list[uuid.UUID]
    metrics: list[str]
    options: dict[str, Any]
    node_count: int | None
    edge_count: int | None
    timings: dict[str, float]
    summary: dict[str, Any]
    attempts: int
    step: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class GraphNode(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One node of a finished build with the metrics that were computed for it."""

    node_id: int
    label: str
    pages: int
    crawled: int
    in_degree: int | None = None
    out_degree: int | None = None
    in_weight: int | None = None
    out_weight: int | None = None
    pagerank: float | None = None
    hub: float | None = None
    authority: float | None = None
    betweenness: float | None = None
    closeness: float | None = None
    component: int | None = None
    strong_component: int | None = None
    kcore: int | None = None
    community: int | None = None
    discovered: str | None = None
    canonical: str | None = None
