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
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis
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
_SET_SCRAPYD_JOBS = QUERIES["set_scrapyd_jobs"]
_FAIL_UNSCHEDULED = QUERIES["fail_unscheduled"]


def _same_request(row: tuple, body: JobCreate, params: dict, overrides: dict) -> bool:
    return (row[2] == body.spider and row[4] == params and row[5] == overrides
            and list(row[6]) == body.tags and row[7] == body.priority and row[8] == body.workers)


class Submission(msgspec.Struct, frozen=True):
    job: Job
    created: bool


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

    if idempotency_key is not None:
        async with pool.connection() as conn:
            row = await (await conn.execute(_JOB_BY_KEY, (user.id, idempotency_key))).fetchone()
        if row is not None:
            return _replay(row, body, params, overrides)

    job_id = uuid.uuid4()
    args = spider_args(str(job_id), params, body.workers)  # may refuse the job: before it is stored
    async with pool.connection() as conn:
        row = await (await conn.execute(_INSERT_JOB, {
            "id": job_id, "owner_id": user.id, "spider": body.spider,
            "params": msgspec.json.encode(params).decode(),
            "settings": msgspec.json.encode(overrides).decode(), "tags": body.tags,
            "priority": body.priority, "workers": body.workers, "key": idempotency_key,
        })).fetchone()
        if row is None:  # a concurrent request with the same key won the insert
            row = await (await conn.execute(_JOB_BY_KEY, (user.id, idempotency_key))).fetchone()
            return _replay(row, body, params, overrides)
    log.info("job %s created by %s: %d start URLs, %d workers", job_id, user.username,
             len(body.start_urls), body.workers)

    scheduled: list[dict[str, Any]] = []
    try:
        await frontier.seed(redis_client, str(job_id), body.start_urls)
        settings = {**{k: setting_text(v) for k, v in overrides.items()}, **crawler_overrides}
        for n, node in enumerate(await scrapyd.place(body.workers)):
            jobid = f"{job_id}-{n}"
            await scrapyd.schedule(node, body.spider, jobid, args, settings,
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
    return Submission(job=job_from_row(row), created=True)


def _replay(row: tuple, body: JobCreate, params: dict, overrides: dict) -> Submission:
    if not _same_request(row, body, params, overrides):
        raise Conflict(
            "This Idempotency-Key was used for a different job.",
            hint="Use a new key for a new job; resend the same body to get the same job.",
        )
    return Submission(job=job_from_row(row), created=False)
