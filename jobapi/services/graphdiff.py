"""Graphs compared across crawls, for the API: the diff of two builds, a series as dynamic GEXF.

Both are reads of finished builds, authorised like every graph read: the
user must be allowed to see each build (its owner, or an admin), otherwise a
404 exactly like an unknown id. A series is a schedule's finished jobs in
slot order; each needs a finished build of the asked level made from that
job alone. A job without one is a 409 that names the jobs and how to build
them: a build takes minutes and is the graph workers' work (queued, claimed,
retried), and a GET that queued builds behind the user's back would be a
read with side effects, so the export refuses instead of building.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
from psycopg_pool import AsyncConnectionPool

from graphs import store
from graphs.diff import GraphDiff, diff_builds
from graphs.dynamic import MAX_CRAWLS, iter_dynamic_gexf
from graphs.errors import GraphNotFound, GraphNotReady, InvalidGraphRequest
from graphs.models import LEVELS
from jobapi.services import graphs as builds
from jobapi.services.schedules import get_schedule_row

# Each finished job of the schedule, in slot order, with its newest finished build of the
# level made from that job alone (NULL when there is none).
SERIES_BUILDS = """
SELECT j.id, j.schedule_slot, b.id
FROM jobs j
LEFT JOIN LATERAL (
    SELECT g.id FROM graph_builds g JOIN graph_build_jobs gj ON gj.build_id = g.id
    WHERE gj.job_id = j.id AND g.level = %(level)s AND g.status = 'done'
      AND g.deleted_at IS NULL
      AND (SELECT count(*) FROM graph_build_jobs x WHERE x.build_id = g.id) = 1
    ORDER BY g.finished_at DESC, g.id LIMIT 1
) b ON true
WHERE j.schedule_id = %(schedule)s AND j.status = 'finished' AND j.deleted_at IS NULL
ORDER BY j.schedule_slot NULLS LAST, j.created_at, j.id
LIMIT %(limit)s
"""
_SHOWN = 10


def plan(rows: list[tuple], schedule_id: uuid.UUID, level: str) -> None:
    """GraphNotReady (409) unless every row of `SERIES_BUILDS` has a build, naming those without."""
    if not rows:
        raise GraphNotReady(f"Schedule {schedule_id} has no finished crawl yet.",
                            hint="Wait until one of its jobs has finished, then build its graph.")
    missing = [str(job) for job, _, build in rows if build is None]
    if missing:
        shown = ", ".join(missing[:_SHOWN]) + (" …" if len(missing) > _SHOWN else "")
        raise GraphNotReady(
            f"{len(missing)} of the schedule's {len(rows)} finished crawls have no finished "
            f"{level} graph build: {shown}.",
            hint=f"Build each with POST /api/v1/jobs/{{id}}/graphs {{\"level\": \"{level}\"}} "
            f"(or `crawlgraph graph build JOB --level {level}`), then ask again.")


async def diff(pool: AsyncConnectionPool, home: Path, a: uuid.UUID, b: uuid.UUID, user: Any,
               *, metric: str | None, top: int, limit: int) -> GraphDiff:
    """The diff of builds `a` and `b`, both visible to `user` (404 otherwise)."""
    build_a = await builds.get_build_row(pool, a, user)
    build_b = await builds.get_build_row(pool, b, user)
    return await anyio.to_thread.run_sync(
        lambda: diff_builds(home, build_a, build_b, metric=metric, top=top, limit=limit))


async def series(pool: AsyncConnectionPool, home: Path, schedule_id: uuid.UUID, user: Any,
                 level: str) -> Iterator[str]:
    """The dynamic GEXF of a schedule's crawls, as chunks (the graphs load as it streams)."""
    if level not in LEVELS:
        raise InvalidGraphRequest(f"Unknown level {level!r}.",
                                  hint=f"Use one of: {', '.join(LEVELS)}.")
    await get_schedule_row(pool, schedule_id, user)
    async with pool.connection() as conn:
        cur = await conn.execute(SERIES_BUILDS, {"level": level, "schedule": schedule_id,
                                                 "limit": MAX_CRAWLS})
        rows = await cur.fetchall()
    plan(rows, schedule_id, level)
    found = [await builds.get_build_row(pool, build, user) for _, _, build in rows]
    lost = [str(b["id"]) for b in found if not (Path(home) / b["path"]).exists()]
    if lost:  # checked before the answer starts: a stream cannot turn into an error
        raise GraphNotFound(f"The graph files of builds {', '.join(lost[:_SHOWN])} are missing.",
                            hint="Build those crawls' graphs again.")
    crawls = [f"job {job}" + (f" (slot {slot.isoformat()})" if slot else "")
              for job, slot, _ in rows]
    graphs = (store.load_graph(home, build) for build in found)
    return iter_dynamic_gexf(graphs, crawls, description=f"crawlgraph schedule {schedule_id}, "
                             f"{level} graphs of {len(rows)} crawls")
