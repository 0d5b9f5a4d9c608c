"""Deleting a job or a graph build: it leaves every listing and read at once, and the
purger (`jobapi.services.purge`) removes what it leaves in the background.

A deletion only marks the row, in one short transaction that locks it: the
job's pages, links, items, events, WARC files and graph builds are purged
later, in batches, by whichever purger takes it. What may not be deleted says
why and what to do: a job that has not ended (cancel it first), a job that a
running recrawl reads, or a job or build whose graph is being built. The
graph builds made from a job go with it. A schedule's `keep_last` deletes its
older crawls through the same rule (`delete_job` without a user).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import Conflict
from jobapi.services.graphs import build_not_found
from jobapi.services.jobs import TERMINAL, not_found
from jobapi.sql import QUERIES

_LOCK_JOB = QUERIES["lock_job_to_delete"]
_ACTIVE_RECRAWL = QUERIES["active_recrawl_of"]
_BUILDS_OF_JOB = QUERIES["builds_of_job"]
_MARK_JOB = QUERIES["mark_job_deleted"]
_LOCK_BUILD = QUERIES["lock_build_to_delete"]
_MARK_BUILDS = QUERIES["mark_builds_deleted"]


class Deletion(msgspec.Struct, kw_only=True):
    """What a deletion took: gone from every listing now, purged in the background."""

    id: uuid.UUID
    deleted_at: datetime
    #: The graph builds made from the job, deleted with it.
    graph_builds: list[uuid.UUID] = []


def _may_delete(owner_id: int, user: CurrentUser | None) -> bool:
    return user is None or user.is_admin or owner_id == user.id


async def _delete_job(conn: psycopg.AsyncConnection, job_id: uuid.UUID,
                      user: CurrentUser | None) -> Deletion:
    row = await (await conn.execute(_LOCK_JOB, (job_id,))).fetchone()
    if row is None or not _may_delete(row[0], user):
        raise not_found(job_id)
    status = row[1]
    if status not in TERMINAL:
        raise Conflict(f"Job {job_id} is {status}: a job that has not ended cannot be deleted.",
                       hint=f"Cancel it first (POST /api/v1/jobs/{job_id}/cancel, or "
                            f"`crawlgraph cancel {job_id}`), then delete it.")
    recrawl = await (await conn.execute(_ACTIVE_RECRAWL, (job_id,))).fetchone()
    if recrawl is not None:
        raise Conflict(f"Job {job_id} is being recrawled by job {recrawl[0]}, which reads "
                       "its pages.",
                       hint=f"Delete it once job {recrawl[0]} has ended (or cancel that one).")
    builds = await (await conn.execute(_BUILDS_OF_JOB, (job_id,))).fetchall()
    running = [build for build, build_status in builds if build_status == "running"]
    if running:
        raise Conflict(f"The graph of job {job_id} is being built (build {running[0]}).",
                       hint="Delete the job once the build is done or failed.")
    (deleted_at,) = await (await conn.execute(_MARK_JOB, (job_id,))).fetchone()
    ids = [build for build, _ in builds]
    if ids:
        await conn.execute(_MARK_BUILDS, (ids,))
    return Deletion(id=job_id, deleted_at=deleted_at, graph_builds=ids)


async def delete_job(pool: AsyncConnectionPool, job_id: uuid.UUID,
                     user: CurrentUser | None) -> Deletion:
    """Delete a job of `user`'s (any job for an admin, or with no user: the purger's
    keep_last); NotFound or Conflict saying why not."""
    async with pool.connection() as conn, conn.transaction():
        return await _delete_job(conn, job_id, user)


async def delete_build(pool: AsyncConnectionPool, build_id: uuid.UUID,
                       user: CurrentUser) -> Deletion:
    """Delete a graph build of `user`'s (an admin's: any); GraphNotFound or Conflict."""
    async with pool.connection() as conn, conn.transaction():
        row = await (await conn.execute(_LOCK_BUILD, (build_id,))).fetchone()
        if row is None or not (row[0] == user.id or user.is_admin):
            raise build_not_found(build_id)
        if row[1] == "running":
            raise Conflict(f"Graph build {build_id} is being built.",
                           hint="Delete it once it is done or failed.")
        (deleted_at,) = await (await conn.execute(_MARK_BUILDS, ([build_id],))).fetchone()
    return Deletion(id=build_id, deleted_at=deleted_at)
