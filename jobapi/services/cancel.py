"""Cancelling a job: mark it, pause its frontier, stop its processes, then clear it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import ApiError, Conflict
from jobapi.schemas import Job
from jobapi.scrapyd import ScrapydClient
from jobapi.services import frontier, runs
from jobapi.services.jobs import TERMINAL, get_job_row, job_from_row
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.jobs")

_MARK_CANCELLED = QUERIES["mark_cancelled"]


async def cancel_job(
    *, pool: AsyncConnectionPool, redis_client: aioredis.Redis, scrapyd: ScrapydClient,
    job_id: uuid.UUID, user: CurrentUser,
) -> tuple[Job, Callable[[], Awaitable[None]] | None]:
    """Mark a job cancelled, pause its frontier and ask its crawler processes to stop.

    Returns the job and a clean-up to run after answering: it waits for the
    processes to exit (killing those still alive after `CANCEL_GRACE_SECONDS`),
    then clears the frontier. Clearing only then matters: a stopping worker gives
    its leased requests back to the queue.
    """
    row = await get_job_row(pool, job_id, user)
    if row[3] == "cancelled":
        return job_from_row(row), None
    if row[3] in TERMINAL:
        raise Conflict(f"Job {job_id} has already {row[3]}.", hint="Only running jobs cancel.")
    async with pool.connection() as conn:
        row = await (await conn.execute(_MARK_CANCELLED, (None, job_id))).fetchone()
    await frontier.pause(redis_client, str(job_id))
    entries = [(scrapyd.node_of(e), str(e.get("jobid", ""))) for e in row[9] or []]
    for node, jobid in entries:
        try:
            await scrapyd.cancel(node, jobid)
        except ApiError as exc:
            log.warning("job %s: could not stop %s: %s", job_id, jobid, exc.message)
    log.info("job %s cancelled by %s", job_id, user.username)

    async def clean_up() -> None:
        await runs.stop_processes(scrapyd, entries, job_id)
        try:
            await frontier.clear(redis_client, str(job_id))
        except ApiError as exc:
            log.warning("job %s: could not clear the frontier: %s", job_id, exc.message)

    return job_from_row(row), clean_up
