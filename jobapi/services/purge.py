"""The purge of deleted jobs and graph builds, one small step at a time.

`purge_step` does one unit of work and says whether there was any: a batch of
one table's rows of one deleted job (links, their URLs, pages, items, redirects, robots
decisions, crawl events, dead letters), a batch of a deleted build's nodes, a
batch of this node's WARC files of deleted jobs, or, once nothing hangs from
it, the job's or build's row. Each step is one short transaction:

- it touches only rows of deleted jobs and builds, which no crawler writes (a
  job is deleted only once it has ended), so the crawlers never wait on it;
- it waits on nobody either: `lock_timeout` gives the step up (it is taken
  again at the next pass) rather than queue behind a lock and make others
  queue behind it;
- a purger killed between steps, or in one, loses nothing: what is deleted is
  committed, the rest is still marked and the next pass goes on from there.

The job or build is taken with SKIP LOCKED, so several purgers (one per node)
share the work. A WARC file is deleted by the purger of the node that holds
it (`warc_files.node`); the job's row waits until every node has deleted its
files. `apply_keep_last` deletes the crawls of schedules past their
`keep_last`, through the same rule as `DELETE /api/v1/jobs/{id}`.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

from jobapi.errors import ApiError
from jobapi.services.retention import delete_job
from jobapi.services.warcs import warc_dir
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.purge")

#: Rows per batch: a few milliseconds of deleting, a short transaction.
BATCH = 2000
#: How long a step may wait on a lock before it gives up until the next pass.
LOCK_TIMEOUT = "1s"
#: The job's tables, purged in this order (links first: the largest; a row of
#: `outlinks` holds a page's links).
JOB_TABLES = ("outlinks", "urls", "pages", "items", "redirects", "robots_decisions", "crawl_events",
              "dead_letters")
_PURGE_JOB_ROWS = tuple(QUERIES[f"purge_{table}"] for table in JOB_TABLES)
_PURGE_NODES = QUERIES["purge_graph_nodes"]
_NEXT_JOB = QUERIES["next_deleted_job"]
_NEXT_BUILD = QUERIES["next_deleted_build"]
_WARCS_HERE = QUERIES["deleted_warcs_on_node"]
_FORGET_WARC = QUERIES["forget_warc"]
_MARK_PURGED = QUERIES["mark_job_purged"]
_DELETE_JOBS = QUERIES["delete_purged_jobs"]
_DELETE_BUILD = QUERIES["delete_purged_build"]
_PAST_KEEP_LAST = QUERIES["jobs_past_keep_last"]
_SET_LOCK_TIMEOUT = f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"


async def _purge_job(conn: psycopg.AsyncConnection, batch: int) -> bool:
    row = await (await conn.execute(_NEXT_JOB)).fetchone()
    if row is not None:
        for query in _PURGE_JOB_ROWS:
            if (await conn.execute(query, (row[0], batch))).rowcount:
                return True
        await conn.execute(_MARK_PURGED, (row[0],))
    deleted = (await conn.execute(_DELETE_JOBS, (batch,))).rowcount
    if deleted:
        log.info("purge: %d deleted job(s) gone", deleted)
    return row is not None or bool(deleted)


async def _purge_build(conn: psycopg.AsyncConnection, home: Path, batch: int) -> bool:
    row = await (await conn.execute(_NEXT_BUILD)).fetchone()
    if row is None:
        return False
    build_id, path = row
    if (await conn.execute(_PURGE_NODES, (build_id, batch))).rowcount:
        return True
    graph_file = (home / path).resolve() if path else None
    # The worker wrote the path relative to the data directory: nothing outside it goes.
    if graph_file is not None and home.resolve() in graph_file.parents:
        graph_file.unlink(missing_ok=True)
    await conn.execute(_DELETE_BUILD, (build_id,))
    log.info("purge: graph build %s is gone", build_id)
    return True


async def _purge_warcs(conn: psycopg.AsyncConnection, home: Path, node: str,
                       batch: int) -> bool:
    rows = await (await conn.execute(_WARCS_HERE, (node, batch))).fetchall()
    directory = warc_dir(home)
    for job_id, name in rows:
        # The name was checked when the row was written (warc_files' CHECK): no path in it.
        for path in (directory / name, directory / f"{name}.open"):
            path.unlink(missing_ok=True)
        await conn.execute(_FORGET_WARC, (job_id, name))
    return bool(rows)


async def purge_step(pool: AsyncConnectionPool, home: Path, *, node: str | None = None,
                     batch: int = BATCH) -> bool:
    """Do one step of the purge; False when there was nothing to do (on this node)."""
    node = node or socket.gethostname()
    for step in (lambda c: _purge_warcs(c, home, node, batch),
                 lambda c: _purge_build(c, home, batch),
                 lambda c: _purge_job(c, batch)):
        try:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(_SET_LOCK_TIMEOUT)
                if await step(conn):
                    return True
        except psycopg.errors.LockNotAvailable:
            log.info("purge: a row is locked by another transaction; taken again later")
    return False


async def apply_keep_last(pool: AsyncConnectionPool, *, limit: int = 100) -> int:
    """Delete the ended crawls of schedules past their `keep_last`; how many it deleted."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(_PAST_KEEP_LAST, (limit,))).fetchall()
    deleted = 0
    for (job_id,) in rows:
        try:
            await delete_job(pool, job_id, None)
        except ApiError as exc:  # recrawled or graphed right now: the next pass tries again
            log.info("purge: keep_last leaves job %s for now: %s", job_id, exc.message)
            continue
        deleted += 1
        log.info("purge: job %s deleted (its schedule keeps only its newest crawls)", job_id)
    return deleted
