"""Jobs as the API reads them: one job for its owner (or an admin), its state, counts.

Ownership: every query goes through `get_job_for_user` (or a listing filtered
by owner, `jobapi.services.listings`); another user's job is a NotFound (404)
for every verb, an admin sees all. Submission is `jobapi.services.submission`,
cancelling `jobapi.services.cancel`.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import NotFound
from jobapi.schemas import Job, ScrapydJobRef
from jobapi.services import frontier
from jobapi.sql import QUERIES

TERMINAL = frozenset({"finished", "failed", "cancelled"})
_JOB_BY_ID = QUERIES["job_by_id"]
_JOB_TEXT_BY_ID = QUERIES["job_text_by_id"]
_JOB_STATE = QUERIES["job_state"]
_COUNT_BY_STATUS = QUERIES["count_jobs_by_status"]


def job_from_row(row: tuple, live: dict[str, Any] | None = None, *, raw: bool = False) -> Job:
    """A Job from a job-query row, or from job_text_columns with `raw` (JSON text kept as is)."""
    params, settings, stats = row[4], row[5], row[10]
    if raw:
        params, settings, stats = msgspec.Raw(params), msgspec.Raw(settings), msgspec.Raw(stats)
    return Job(
        id=row[0], owner_id=row[1], spider=row[2], status=row[3], params=params,
        settings=settings, tags=list(row[6]), priority=row[7], workers=row[8],
        scrapyd_jobs=[ScrapydJobRef(node=int(s.get("node", 0)), jobid=str(s.get("jobid", "")))
                      for s in row[9] or []],
        stats=stats if raw else stats or {}, frontier=live, close_reason=row[11], error=row[12],
        created_at=row[13], updated_at=row[14], started_at=row[15], finished_at=row[16],
    )


def _may_see(row: tuple, user: CurrentUser) -> bool:
    return user.is_admin or row[1] == user.id


async def _fetch_job(pool: AsyncConnectionPool, job_id: uuid.UUID) -> tuple | None:
    async with pool.connection() as conn:
        return await (await conn.execute(_JOB_BY_ID, (job_id,))).fetchone()


def not_found(job_id: uuid.UUID) -> NotFound:
    return NotFound(f"There is no job {job_id}.", hint="GET /api/v1/jobs lists your jobs.")


async def get_job_row(pool: AsyncConnectionPool, job_id: uuid.UUID, user: CurrentUser) -> tuple:
    row = await _fetch_job(pool, job_id)
    if row is None or not _may_see(row, user):
        raise not_found(job_id)
    return row


async def get_job_for_user(
    pool: AsyncConnectionPool, job_id: uuid.UUID, user: CurrentUser,
) -> Job:
    """The job if `user` owns it (or is an admin); NotFound otherwise."""
    return job_from_row(await get_job_row(pool, job_id, user))


async def read_job(
    pool: AsyncConnectionPool, redis_client: aioredis.Redis, job_id: uuid.UUID,
    user: CurrentUser,
) -> Job:
    """The job as `GET /jobs/{id}` answers it: its JSON documents as stored (to be encoded,
    not read), and, while it is not finished, the frontier's live counters in `frontier`.

    NotFound as `get_job_for_user`. One query (binary results: timestamps and UUIDs
    parse faster than their text); the counters are `frontier.stats`, kept a second.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(_JOB_TEXT_BY_ID, (job_id,), binary=True)
        row = await cur.fetchone()
    if row is None or not _may_see(row, user):
        raise not_found(job_id)
    live = None if row[3] in TERMINAL else await frontier.stats(redis_client, str(job_id))
    return job_from_row(row, live, raw=True)


async def job_state(pool: AsyncConnectionPool, job_id: uuid.UUID) -> tuple | None:
    """(owner_id, status, stats, error, close_reason) of a job, None if there is none."""
    async with pool.connection() as conn:
        return await (await conn.execute(_JOB_STATE, (job_id,))).fetchone()


async def count_by_status(pool: AsyncConnectionPool) -> dict[str, int]:
    """How many jobs there are in each status (for the metrics)."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(_COUNT_BY_STATUS)).fetchall()
    return {status: int(n) for status, n in rows}
