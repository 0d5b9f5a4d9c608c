"""Firing the due slots of schedules, exactly once across every scheduler process.

`fire_due(ctx, now)` is one pass: for each enabled schedule whose next slot
is due, `schedules_slots.plan` picks the slot this pass handles, then one
transaction inserts that slot's row into `schedule_runs` (primary key
(schedule, slot): the claim), stores the job row (`submission.insert`), marks
the job as the schedule's (`jobs.schedule_id`, `schedule_slot`) and moves the
schedule's next slot on. A second process handling the same slot waits on the
claim's unique key until the first commits, then inserts nothing and fires
nothing; a process killed before the commit leaves no claim, so the slot is
fired by the next pass of any process. After the commit the job is started
as any job (`submission.start`: frontier, scrapyd); a process killed in
between leaves a stored `pending` job that the API's recovery resolves
(`jobapi.services.recovery`), never a second job.

A fire is a job like any other, owned by the schedule's owner: the owner's
job rate limit and the submission checks apply. A slot that submits no job is
recorded with its reason: `refused` (a limit, a check, a disabled owner),
`failed` (stored but could not start: scrapyd down), `skipped` (overlap
`skip` while the previous job runs), `missed` (catch-up `none` after a
downtime).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import msgspec
import redis.asyncio as aioredis
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import ApiError
from jobapi.ratelimit import RateLimiter, RateLimits
from jobapi.schemas import JobCreate
from jobapi.scrapyd import ScrapydClient
from jobapi.services import schedules_slots as slots
from jobapi.services import submission
from jobapi.services.schedules import timing_of
from jobapi.services.spiders import SpiderCatalog
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.scheduler")

BATCH = 200
MAX_BATCHES = 20  # a pass handles at most BATCH * MAX_BATCHES slots
CLAIMS_AT_ONCE = 4  # each holds a connection for its transaction
STARTS_AT_ONCE = 16
_DUE = QUERIES["due_schedules"]
_CLAIM = QUERIES["claim_slot"]
_SETTLE = QUERIES["settle_run"]
_ADVANCE = QUERIES["advance_schedule"]
_MARK_JOB = QUERIES["mark_job_scheduled"]
_ACTIVE_JOB = QUERIES["active_job_of_schedule"]
_OWNER = QUERIES["schedule_owner_user"]
_PREVIOUS = QUERIES["previous_finished_job"]


# A slot claimed with its job stored: (the schedule's row, the plan, the job to start).
Fired = tuple[tuple, slots.Plan, submission.Prepared]


@dataclass
class FireContext:
    """What firing needs: the API's own services, and the catch-up grace."""

    pool: AsyncConnectionPool
    redis_client: aioredis.Redis
    scrapyd: ScrapydClient
    limiter: RateLimiter
    rate_limits: RateLimits
    spider_catalog: SpiderCatalog
    allow_private_networks: bool
    crawler_overrides: dict[str, str]
    grace: timedelta


async def fire_due(ctx: FireContext, now: datetime | None = None) -> int:
    """Handle every due slot once; the number of slots this process handled.

    The claims and job rows come first, one transaction each, several at a
    time, in an order of this process's own (two processes mostly take
    different schedules rather than queue on the same claims); the stored
    jobs are started once every due slot is claimed.
    """
    now = now or datetime.now(UTC)
    handled, fired = 0, []
    for _ in range(MAX_BATCHES):
        async with ctx.pool.connection() as conn:
            rows = await (await conn.execute(_DUE, {"now": now, "limit": BATCH})).fetchall()
        random.shuffle(rows)
        results: list[tuple[int, Fired | None]] = []
        await _each(rows, CLAIMS_AT_ONCE, functools.partial(_handle_one, ctx, now, results))
        handled += sum(count for count, _ in results)
        fired += [stored for _, stored in results if stored is not None]
        if len(rows) < BATCH:
            break
    await _each(fired, STARTS_AT_ONCE, functools.partial(_start, ctx))
    return handled


async def _each(items: list, at_once: int, work: Callable[[Any], Awaitable[None]]) -> None:
    limit = anyio.Semaphore(at_once)

    async def one(item: Any) -> None:
        async with limit:
            await work(item)

    async with anyio.create_task_group() as group:
        for item in items:
            group.start_soon(one, item)


async def _handle_one(ctx: FireContext, now: datetime, results: list[tuple[int, Fired | None]],
                      row: tuple) -> None:
    try:
        results.append(await _handle(ctx, row, now))
    except Exception:  # one schedule's trouble must not stop the others
        log.exception("schedule %s: the slot due at %s was not handled", row[0], row[11])


async def _claim(conn: AsyncConnection, schedule_id: Any, plan: slots.Plan, outcome: str,
                 reason: str | None) -> bool:
    row = await (await conn.execute(_CLAIM, {
        "schedule": schedule_id, "slot": plan.slot, "outcome": outcome, "missed": plan.missed,
        "reason": reason})).fetchone()
    return row is not None


async def _advance(conn: AsyncConnection, schedule_id: Any, due: datetime,
                   plan: slots.Plan) -> None:
    await conn.execute(_ADVANCE, {"schedule": schedule_id, "due": due, "next": plan.next_due})


async def _record(ctx: FireContext, row: tuple, plan: slots.Plan, outcome: str,
                  reason: str) -> tuple[int, None]:
    """Claim the slot with an outcome that submits no job."""
    async with ctx.pool.connection() as conn, conn.transaction():
        claimed = await _claim(conn, row[0], plan, outcome, reason)
        await _advance(conn, row[0], row[11], plan)
    if claimed:
        log.info("schedule %s: slot %s %s: %s", row[0], plan.slot.isoformat(), outcome, reason)
    return int(claimed), None


def _late_reason(plan: slots.Plan, now: datetime) -> str | None:
    if not plan.late:
        return None
    return (f"caught up {int((now - plan.slot).total_seconds())} s late: no scheduler ran at "
            "its time")


async def _handle(ctx: FireContext, row: tuple, now: datetime) -> tuple[int, Fired | None]:
    """Claim the due slot of one schedule: (1 if this process handled it, a job to start)."""
    schedule_id, due = row[0], row[11]
    plan = slots.plan(timing_of(row), due, now, row[9], ctx.grace)
    if plan is None:
        return 0, None
    if not plan.fire:
        return await _record(ctx, row, plan, "missed",
                             "no scheduler ran at its time and catch-up is none")
    async with ctx.pool.connection() as conn:
        owner = await (await conn.execute(_OWNER, (row[1],))).fetchone()
        active = None
        if row[8] == "skip":
            active = await (await conn.execute(_ACTIVE_JOB, (schedule_id,))).fetchone()
    if active is not None:
        return await _record(ctx, row, plan, "skipped",
                             f"the previous job {active[0]} is still {active[1]}")
    if owner is None or owner[3]:
        return await _record(ctx, row, plan, "refused", "the owner's account is disabled")
    user = CurrentUser(id=owner[0], username=owner[1], role=owner[2])
    try:
        body = msgspec.convert(row[7], JobCreate)
    except msgspec.ValidationError as exc:
        return await _record(ctx, row, plan, "refused",
                             f"the stored job body is no longer valid: {exc}")
    return await _claim_and_store(ctx, row, plan, user, body, now)


async def recrawling(conn: AsyncConnection, schedule_id: Any, body: JobCreate) -> JobCreate:
    """The body of a fire: it recrawls the series' previous finished job (unless it names one)."""
    if body.recrawl_of is not None:
        return body
    prev = await (await conn.execute(_PREVIOUS, (schedule_id,))).fetchone()
    return body if prev is None else msgspec.structs.replace(body, recrawl_of=str(prev[0]))


async def _claim_and_store(ctx: FireContext, row: tuple, plan: slots.Plan, user: CurrentUser,
                           body: JobCreate, now: datetime) -> tuple[int, Fired | None]:
    schedule_id, due = row[0], row[11]
    async with ctx.pool.connection() as conn, conn.transaction():
        claimed = await _claim(conn, schedule_id, plan, "submitted", _late_reason(plan, now))
        # Unclaimed, another process has (or had) this slot: fire nothing. Moving the
        # next slot on from `due` then changes nothing unless a stale one was left behind.
        await _advance(conn, schedule_id, due, plan)
        if not claimed:
            return 0, None
        try:
            await ctx.limiter.hit("jobs", str(user.id), ctx.rate_limits.jobs_per_user,
                                  what="job submissions")
            body = await recrawling(conn, schedule_id, body)
            await submission.check_recrawl(conn, body, user)
            prepared = await submission.prepare(
                body, allow_private_networks=ctx.allow_private_networks,
                known_spiders=await ctx.spider_catalog.names())
        except ApiError as exc:
            await conn.execute(_SETTLE, {"schedule": schedule_id, "slot": plan.slot,
                                         "outcome": "refused", "job": None,
                                         "reason": exc.message})
            log.info("schedule %s: slot %s refused: %s", schedule_id, plan.slot.isoformat(),
                     exc.message)
            return 1, None
        await submission.insert(conn, prepared, user, None)
        await conn.execute(_MARK_JOB, {"schedule": schedule_id, "slot": plan.slot,
                                       "job": prepared.job_id})
        await conn.execute(_SETTLE, {"schedule": schedule_id, "slot": plan.slot,
                                     "outcome": "submitted", "job": prepared.job_id,
                                     "reason": _late_reason(plan, now)})
    log.info("schedule %s: slot %s fired job %s", schedule_id, plan.slot.isoformat(),
             prepared.job_id)
    return 1, (row, plan, prepared)


async def _start(ctx: FireContext, stored: Fired) -> None:
    """Start a stored job as any job; a failure is the run's reason too."""
    row, plan, prepared = stored
    try:
        await submission.start(pool=ctx.pool, redis_client=ctx.redis_client,
                               scrapyd=ctx.scrapyd, prepared=prepared,
                               crawler_overrides=ctx.crawler_overrides)
        return
    except Exception as exc:
        reason = (f"could not start: {exc.message}" if isinstance(exc, ApiError)
                  else f"could not start: internal error ({type(exc).__name__})")
    async with ctx.pool.connection() as conn:
        await conn.execute(_SETTLE, {"schedule": row[0], "slot": plan.slot,
                                     "outcome": "failed", "job": prepared.job_id,
                                     "reason": reason})
