"""Graph builds in Postgres and graph files on disk.

A build is a `graph_builds` row: `queued` -> `running` (claimed by one worker
with `FOR UPDATE SKIP LOCKED`, `attempts` incremented, `heartbeat_at` kept
fresh) -> `done` or `failed`. `attempts` doubles as a fencing token: a worker
only updates a build while the row still has the attempt it claimed, so a
worker that was presumed dead and replaced cannot overwrite its successor.

Per-node metrics and text attributes go to `graph_nodes` with COPY in the same transaction that
marks the build done; the graph itself is saved as
`<home>/graphs/<build id>.gt.gz` with all its properties.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graph_tool as gt
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from graphs.errors import GraphNotFound, GraphNotReady, InvalidGraphRequest
from graphs.exports import CHUNK, node_columns, text_columns
from graphs.models import METRICS, NODE_COLUMNS, TEXT_COLUMNS, GraphBuildRequest

NOTIFY_CHANNEL = "crawlgraph_graph_builds"
GRAPHS_DIR = "graphs"

INSERT_BUILD = """
INSERT INTO graph_builds (id, owner_id, level, metrics, params, options, status,
                          attempts, worker, heartbeat_at, started_at)
VALUES (%(id)s, %(owner_id)s, %(level)s, %(metrics)s, %(params)s, %(options)s, %(status)s,
        %(attempts)s, %(worker)s,
        CASE WHEN %(status)s = 'running' THEN now() END,
        CASE WHEN %(status)s = 'running' THEN now() END)
"""
INSERT_BUILD_JOBS = """
INSERT INTO graph_build_jobs (build_id, job_id) SELECT %s, unnest(%s::uuid[])
ON CONFLICT DO NOTHING
"""
NOTIFY = "SELECT pg_notify(%s, %s)"
CLAIM = """
WITH next AS (
    SELECT id FROM graph_builds
    WHERE (status = 'queued'
           OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale)s)))
      AND attempts < max_attempts AND deleted_at IS NULL
    ORDER BY created_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE graph_builds AS b
SET status = 'running', attempts = b.attempts + 1, worker = %(worker)s,
    heartbeat_at = now(), started_at = coalesce(b.started_at, now()),
    step = 'claimed', error = NULL, updated_at = now()
FROM next WHERE b.id = next.id
RETURNING b.id, b.attempts, b.max_attempts, b.level, b.metrics, b.options
"""
# A running build whose worker stopped heartbeating and that has used all its attempts.
EXPIRE = """
UPDATE graph_builds
SET status = 'failed', step = NULL, finished_at = now(), updated_at = now(),
    error = format('The build was interrupted %%s times (its worker stopped or was killed); '
                   'giving up.', attempts)
WHERE id IN (
    SELECT id FROM graph_builds
    WHERE status = 'running' AND attempts >= max_attempts
      AND heartbeat_at < now() - make_interval(secs => %(stale)s)
    FOR UPDATE SKIP LOCKED
)
RETURNING id, attempts
"""
HEARTBEAT = """
UPDATE graph_builds SET heartbeat_at = now(), step = %(step)s, updated_at = now()
WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'running'
"""
FINISH = """
UPDATE graph_builds
SET status = 'done', node_count = %(nodes)s, edge_count = %(edges)s, timings = %(timings)s,
    summary = %(summary)s, path = %(path)s, step = NULL, error = NULL,
    heartbeat_at = now(), finished_at = now(), updated_at = now()
WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'running'
"""
LOCK_CLAIM = """
SELECT 1 FROM graph_builds
WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'running' FOR UPDATE
"""
FAIL = """
UPDATE graph_builds
SET status = 'failed', error = %(error)s, step = NULL, timings = %(timings)s,
    finished_at = now(), updated_at = now()
WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'running'
"""
# A clean stop mid-build gives the attempt back: it was not the build's fault.
REQUEUE = """
UPDATE graph_builds
SET status = 'queued', attempts = attempts - 1, worker = NULL, heartbeat_at = NULL,
    step = NULL, updated_at = now()
WHERE id = %(id)s AND attempts = %(attempt)s AND status = 'running'
"""
SELECT_BUILD_JOBS = "SELECT job_id FROM graph_build_jobs WHERE build_id = %s ORDER BY job_id"
DELETE_NODES = "DELETE FROM graph_nodes WHERE build_id = %s"
SELECT_BUILD = """
SELECT b.id, b.owner_id, b.status, b.level, b.metrics, b.options, b.node_count, b.edge_count,
       b.timings, b.summary, b.attempts, b.step, b.error, b.path, b.created_at, b.started_at,
       b.finished_at,
       ARRAY(SELECT j.job_id FROM graph_build_jobs j WHERE j.build_id = b.id
             ORDER BY j.job_id) AS jobs
FROM graph_builds b WHERE b.id = %s AND b.deleted_at IS NULL
"""
BUILD_FIELDS = ("id", "owner_id", "status", "level", "metrics", "options", "node_count",
                "edge_count", "timings", "summary", "attempts", "step", "error", "path",
                "created_at", "started_at", "finished_at", "jobs")
NODE_FIELDS = ("node_id", "label") + NODE_COLUMNS + TEXT_COLUMNS
_COPY_NODES = "COPY graph_nodes ({}) FROM STDIN"
_TEXT_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class Claim:
    """A build a worker has claimed: its id and the attempt number that fences it."""

    id: uuid.UUID
    attempt: int
    max_attempts: int
    level: str
    metrics: list[str]
    options: dict[str, Any]


def graph_path(home: Path, build_id: uuid.UUID | str) -> Path:
    """Where the graph file of a build lives under the data directory."""
    return Path(home) / GRAPHS_DIR / f"{build_id}.gt.gz"


def create_build(
    conn: psycopg.Connection,
    owner_id: int,
    job_ids: Sequence[uuid.UUID],
    request: GraphBuildRequest,
    *,
    running_as: str | None = None,
) -> uuid.UUID:
    """Record a build request (queued, or already running for `running_as`) and wake workers."""
    request.validate()
    build_id = uuid.uuid4()
    with conn.transaction():
        conn.execute(INSERT_BUILD, insert_params(build_id, owner_id, job_ids, request, running_as))
        conn.execute(INSERT_BUILD_JOBS, (build_id, list(job_ids)))
        if running_as is None:
            conn.execute(NOTIFY, (NOTIFY_CHANNEL, str(build_id)))
    return build_id


def insert_params(build_id: uuid.UUID, owner_id: int, job_ids: Sequence[uuid.UUID],
                   request: GraphBuildRequest, running_as: str | None) -> dict[str, Any]:
    return {
        "id": build_id,
        "owner_id": owner_id,
        "level": request.level,
        "metrics": list(request.metrics),
        "params": Jsonb({"jobs": [str(j) for j in job_ids]}),
        "options": Jsonb(request.options()),
        "status": "queued" if running_as is None else "running",
        "attempts": 0 if running_as is None else 1,
        "worker": running_as,
    }


def claim(conn: psycopg.Connection, worker: str, stale_after: float) -> Claim | None:
    """Take the oldest queued (or stale running) build, or None."""
    with conn.transaction():
        row = conn.execute(CLAIM, {"stale": stale_after, "worker": worker}).fetchone()
    if row is None:
        return None
    return Claim(id=row[0], attempt=row[1], max_attempts=row[2], level=row[3],
                 metrics=list(row[4]), options=dict(row[5]))


def expire(conn: psycopg.Connection, stale_after: float) -> list[tuple[uuid.UUID, int]]:
    """Fail stale running builds that have no attempt left; return (id, attempts) of each."""
    with conn.transaction():
        return [(r[0], r[1]) for r in conn.execute(EXPIRE, {"stale": stale_after}).fetchall()]


def heartbeat(conn: psycopg.Connection, claim_: Claim, step: str) -> bool:
    """Refresh the claim; False when the build is no longer ours."""
    with conn.transaction():
        cur = conn.execute(HEARTBEAT, {"id": claim_.id, "attempt": claim_.attempt, "step": step})
    return cur.rowcount == 1


def build_jobs(conn: psycopg.Connection, build_id: uuid.UUID) -> list[uuid.UUID]:
    return [r[0] for r in conn.execute(SELECT_BUILD_JOBS, (build_id,)).fetchall()]


def _copy_texts(prop: Any, start: int, stop: int, empty: str) -> list[str]:
    """COPY text values of a string property for nodes start..stop ("" as `empty`)."""
    values = "\x00".join(prop[v] for v in range(start, stop)).translate(_TEXT_ESCAPE)
    return [value or empty for value in values.split("\x00")]


def _node_lines(g: gt.Graph, build_id: uuid.UUID, columns: list[str],
                texts: Sequence[str] = ()) -> Iterator[str]:
    """Text-format COPY lines (build_id, node_id, label, columns..., texts...), by chunks.

    An empty text attribute is NULL.
    """
    template = f"{build_id}\t" + "\t".join(["{}"] * (len(columns) + len(texts) + 2)) + "\n"
    for start in range(0, g.num_vertices(), CHUNK):
        stop = min(start + CHUNK, g.num_vertices())
        labels = _copy_texts(g.vp.label, start, stop, "")
        values = [g.vp[c].a[start:stop].tolist() for c in columns]
        values += [_copy_texts(g.vp[c], start, stop, "\\N") for c in texts]
        yield "".join(template.format(*row) for row in zip(
            range(start, stop), labels, *values, strict=True))


def finish(conn: psycopg.Connection, claim_: Claim, g: gt.Graph, path: str,
           timings: dict[str, float], summary: dict[str, Any]) -> bool:
    """Store the nodes and mark the build done, in one transaction; False if it was not ours.

    Adds `store_nodes` (seconds) to `timings`.
    """
    columns, texts = node_columns(g), text_columns(g)
    fields = sql.SQL(", ").join(sql.Identifier(c) for c in ("build_id", "node_id", "label",
                                                            *columns, *texts))
    with conn.transaction():
        held = conn.execute(LOCK_CLAIM, {"id": claim_.id, "attempt": claim_.attempt}).fetchone()
        if held is None:
            return False
        started = time.perf_counter()
        conn.execute(DELETE_NODES, (claim_.id,))
        with conn.cursor() as cur, cur.copy(sql.SQL(_COPY_NODES).format(fields)) as copy:
            for chunk in _node_lines(g, claim_.id, columns, texts):
                copy.write(chunk)
        timings["store_nodes"] = round(time.perf_counter() - started, 6)
        conn.execute(FINISH, {
            "id": claim_.id, "attempt": claim_.attempt, "nodes": g.num_vertices(),
            "edges": g.num_edges(), "timings": Jsonb(timings), "summary": Jsonb(summary),
            "path": path,
        })
    return True


def fail(conn: psycopg.Connection, claim_: Claim, error: str, timings: dict[str, float]) -> bool:
    with conn.transaction():
        cur = conn.execute(FAIL, {"id": claim_.id, "attempt": claim_.attempt,
                                  "error": error[:2000], "timings": Jsonb(timings)})
    return cur.rowcount == 1


def requeue(conn: psycopg.Connection, claim_: Claim) -> bool:
    with conn.transaction():
        cur = conn.execute(REQUEUE, {"id": claim_.id, "attempt": claim_.attempt})
    return cur.rowcount == 1


def row_to_build(row: Iterable[Any]) -> dict[str, Any]:
    return dict(zip(BUILD_FIELDS, row, strict=True))


def get_build(conn: psycopg.Connection, build_id: uuid.UUID | str) -> dict[str, Any]:
    """The build row as a dict (with `jobs`), or GraphNotFound."""
    try:
        key = uuid.UUID(str(build_id))
    except ValueError:
        raise GraphNotFound(
            f"No graph build {build_id!r}.", hint="Give a build id (a UUID)."
        ) from None
    row = conn.execute(SELECT_BUILD, (key,)).fetchone()
    if row is None:
        raise GraphNotFound(f"No graph build {build_id}.",
                            hint="List your builds or start one with `crawlgraph graph build`.")
    return row_to_build(row)


def require_done(build: dict[str, Any]) -> None:
    """Raise GraphNotReady unless the build finished."""
    if build["status"] != "done":
        detail = f": {build['error']}" if build["status"] == "failed" and build["error"] else ""
        raise GraphNotReady(
            f"Graph build {build['id']} is {build['status']}{detail}.",
            hint="Wait until it is done (GET the build, or `crawlgraph graph build --wait`)."
            if build["status"] in ("queued", "running") else "Start a new build.",
        )


def load_graph(home: Path, build: dict[str, Any]) -> gt.Graph:
    """Load a finished build's graph file."""
    require_done(build)
    path = Path(home) / build["path"]
    if not path.exists():
        raise GraphNotFound(f"The graph file of build {build['id']} is missing.",
                            hint="Build the graph again.")
    return gt.load_graph(os.fspath(path))


def save_graph(home: Path, build_id: uuid.UUID, g: gt.Graph) -> str:
    """Save atomically; return the path relative to `home` (what `graph_builds.path` holds)."""
    path = graph_path(home, build_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.gt.gz")
    g.save(os.fspath(tmp))
    os.replace(tmp, path)
    return str(path.relative_to(Path(home)))


SELECT_JOB_OWNER = "SELECT owner_id FROM jobs WHERE id = %s AND deleted_at IS NULL"
_SELECT_NODES = """
SELECT {fields} FROM graph_nodes WHERE build_id = %(id)s
ORDER BY {sort} {order} NULLS LAST, node_id
LIMIT %(limit)s OFFSET %(offset)s
"""
SORT_KEYS = ("node_id", "label") + NODE_COLUMNS + TEXT_COLUMNS


def nodes_query(build: dict[str, Any], sort: str, order: str) -> sql.Composed:
    """The SELECT of a build's nodes sorted by `sort`; InvalidGraphRequest for a bad key."""
    if sort not in SORT_KEYS:
        raise InvalidGraphRequest(f"Cannot sort nodes by {sort!r}.",
                                  hint=f"Use one of: {', '.join(SORT_KEYS)}.")
    if order not in ("asc", "desc"):
        raise InvalidGraphRequest(f"Unknown order {order!r}.", hint="Use asc or desc.")
    metric = next((m for m, cols in METRICS.items() if sort in cols), None)
    if metric is not None and metric not in build["metrics"]:
        raise InvalidGraphRequest(
            f"Build {build['id']} did not compute {metric!r}, so it cannot sort by {sort!r}.",
            hint=f"Its metrics: {', '.join(build['metrics']) or 'none'}; "
            f"start a build with {metric!r}.")
    return sql.SQL(_SELECT_NODES).format(
        fields=sql.SQL(", ").join(sql.Identifier(f) for f in NODE_FIELDS),
        sort=sql.Identifier(sort),
        order=sql.SQL("DESC" if order == "desc" else "ASC"),
    )


def top_nodes(conn: psycopg.Connection, build: dict[str, Any], sort: str = "pagerank",
              order: str = "desc", limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
    """A page of a finished build's nodes, sorted, as dicts of `NODE_FIELDS`."""
    require_done(build)
    query = nodes_query(build, sort, order)
    rows = conn.execute(query, {"id": build["id"], "limit": limit, "offset": offset}).fetchall()
    return [dict(zip(NODE_FIELDS, row, strict=True)) for row in rows]
