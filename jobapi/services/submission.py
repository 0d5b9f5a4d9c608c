"""Submitting a job: validate, store it `pending`, seed the frontier, schedule its workers.

`create_job` validates (private-address guard, settings allow-list), stores
the job `pending`, seeds the frontier with the start URLs, and schedules
`workers` crawler processes on the least busy scrapyd nodes that answer
(scrapyd job id `<job id>-<n>`, spider argument `job_id` and one argument per
job parameter; start URLs too long for a command line reach the crawlers
through the frontier only). Any failure after the row exists marks the job
`failed` with the reason, cancels what was already scheduled and clears the
frontier, then answers 502/503: a job never sits silently in pending. A
reused Idempotency-Key replays the stored job.

Its three steps are public for the scheduler (`jobapi.services.schedules_fire`),
which stores a fired job in the transaction that claims its slot: `prepare`
(validation), `insert` (the row, on the caller's connection) and `start`
(frontier and scrapyd, after the row is committed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import ApiError, Conflict, Unprocessable
from jobapi.schemas import Job, JobCreate
from jobapi.scrapyd import ScrapydClient
from jobapi.services import frontier, runs
from jobapi.services.jobs import job_from_row
from jobapi.services.spiderargs import job_params, setting_text, spider_args
from jobapi.services.urlguard import check_urls
from jobapi.services.validation import check_patterns, check_settings, url_hosts
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.jobs")

_INSERT_JOB = QUERIES["insert_job"]
_JOB_BY_KEY = QUERIES["job_by_key"]
_JOB_BY_ID = QUERIES["job_by_id"]
_SET_SCRAPYD_JOBS = QUERIES["set_scrapyd_jobs"]
_FAIL_UNSCHEDULED = QUERIES["fail_unscheduled"]


def _same_request(row: tuple, body: JobCreate, params: dict, overrides: dict) -> bool:
    return (row[2] == body.spider and row[4] == params and row[5] == overrides
            and list(row[6]) == body.tags and row[7] == body.priority and row[8] == body.workers)


class Submission(msgspec.Struct, frozen=True):
    job: Job
    created: bool


class Prepared(msgspec.Struct, frozen=True):
    """A validated job body, ready to store: its id, parameters and spider arguments."""

    body: JobCreate
    job_id: uuid.UUID
    params: dict[str, Any]
    overrides: dict[str, Any]
    args: dict[str, str]


async def prepare(body: JobCreate, *, allow_private_networks: bool,
                  known_spiders: set[str] | None) -> Prepared:
    """Validate a job body (settings, patterns, spider, private-address guard)."""
    overrides = check_settings(body.settings)
    check_patterns(body)
    hosts = url_hosts(body)
    if known_spiders is not None and body.spider not in known_spiders:
        raise Unprocessable(
            f"spider: there is no spider {body.spider!r}.", field="spider",
            hint="Available: " + (", ".join(sorted(known_spiders)) or "none") + ".",
        )
    if not allow_private_networks:
        await check_urls(hosts)
    params = job_params(body)
    job_id = uuid.uuid4()
    args = spider_args(str(job_id), params, body.workers)  # may refuse the job: before it is stored
    return Prepared(body=body, job_id=job_id, params=params, overrides=overrides, args=args)


async def check_recrawl(conn: AsyncConnection, body: JobCreate, user: CurrentUser) -> None:
    """A job may recrawl (`recrawl_of`) only a job its owner may read."""
    if body.recrawl_of is None:
        return
    job_id = uuid.UUID(body.recrawl_of)  # the body's pattern made sure it is one
    row = await (await conn.execute(_JOB_BY_ID, (job_id,))).fetchone()
    if row is None or not (user.is_admin or row[1] == user.id):
        raise Unprocessable(f"recrawl_of: there is no job {job_id} you may read.",
                            field="recrawl_of", hint="GET /api/v1/jobs lists your jobs.")


async def insert(conn: AsyncConnection, prepared: Prepared, user: CurrentUser,
                 idempotency_key: str | None) -> tuple | None:
    """Store the job row `pending` on `conn` (None: the key's job exists already)."""
    body = prepared.body
    return await (await conn.execute(_INSERT_JOB, {
        "id": prepared.job_id, "owner_id": user.id, "spider": body.spider,
        "params": msgspec.json.encode(prepared.params).decode(),
        "settings": msgspec.json.encode(prepared.overrides).decode(), "tags": body.tags,
        "priority": body.priority, "workers": body.workers, "key": idempotency_key,
        "recrawl_of": body.recrawl_of,
    })).fetchone()


async def create_job(
    *,
    pool: AsyncConnectionPool,
    redis_client: aioredis.Redis,
    scrapyd: ScrapydClient,
    user: CurrentUser,
    body: JobCreate,
    idempotency_key: str | None,
    allow_private_networks: bool,
    known_spiders: set[str] | None,
    crawler_overrides: Mapping[str, str],
) -> Submission:
    """Store, seed and schedule a job; replay the stored one for a reused Idempotency-Key."""
    prepared = await prepare(body, allow_private_networks=allow_private_networks,
                             known_spiders=known_spiders)
    params, overrides = prepared.params, prepared.overrides
    if idempotency_key is not None:
        async with pool.connection() as conn:
            row = await (await conn.execute(_JOB_BY_KEY, (user.id, idempotency_key))).fetchone()
        if row is not None:
            return _replay(row, body, params, overrides)

    async with pool.connection() as conn:
        await check_recrawl(conn, body, user)
        row = await insert(conn, prepared, user, idempotency_key)
        if row is None:  # a concurrent request with the same key won the insert
            row = await (await conn.execute(_JOB_BY_KEY, (user.id, idempotency_key))).fetchone()
            return _replay(row, body, params, overrides)
    log.info("job %s created by %s: %d start URLs, %d workers", prepared.job_id, user.username,
             len(body.start_urls), body.workers)
    job = await start(pool=pool, redis_client=redis_client, scrapyd=scrapyd, prepared=prepared,
                      crawler_overrides=crawler_overrides)
    return Submission(job=job, created=True)


async def start(*, pool: AsyncConnectionPool, redis_client: aioredis.Redis,
                scrapyd: ScrapydClient, prepared: Prepared,
                crawler_overrides: Mapping[str, str]) -> Job:
    """Seed the stored job's frontier and schedule its workers; on failure, fail it and raise."""
    body, job_id = prepared.body, prepared.job_id
    scheduled: list[dict[str, Any]] = []
    try:
        await frontier.seed(redis_client, str(job_id), body.start_urls)
        settings = {**{k: setting_text(v) for k, v in prepared.overrides.items()},
                    **crawler_overrides}
        for n, node in enumerate(await scrapyd.place(body.workers)):
            jobid = f"{job_id}-{n}"
            await scrapyd.schedule(node, body.spider, jobid, prepared.args, settings,
                                   priority=float(body.priority))
            scheduled.append({"node": node.index, "node_url": node.base, "jobid": jobid})
    except Exception as exc:
        # Whatever went wrong, the job must not stay pending.
        reason = (exc.message if isinstance(exc, ApiError)
                  else f"internal error ({type(exc).__name__})")
        log.warning("job %s failed to start: %s", job_id, reason)
        await runs.abandon(scrapyd, redis_client, job_id, scheduled)
        async with pool.connection() as conn:
            await conn.execute(_FAIL_UNSCHEDULED, (f"could not start: {reason}",
                                                   msgspec.json.encode(scheduled).decode(),
                                                   job_id))
        raise
    async with pool.connection() as conn:
        row = await (await conn.execute(
            _SET_SCRAPYD_JOBS, (msgspec.json.encode(scheduled).decode(), job_id)
        )).fetchone()
    return job_from_row(row)


def _replay(row: tuple, body: JobCreate, params: dict, overrides: dict) -> Submission:
    if not _same_request(row, body, params, overrides):
        raise Conflict(
            "This Idempotency-Key was used for a different job.",
            hint="Use a new key for a new job; resend the same body to get the same job.",
        )
    return Submission(job=job_from_row(row), created=False)
