"""Schedules as the API keeps them: create, list, show, change, pause, resume, delete.

Ownership is as for jobs: a user sees and changes only their own schedules,
another user's is a NotFound (404) for every verb, an admin sees all. A
schedule's job body is validated as a submission is (`submission.prepare`:
the settings allow-list, the spider, the private-address guard), so a schedule
that could never fire is refused when it is made. Its timing is checked by
`schedules_slots` (a bad cron expression says which field; an unknown time
zone is named). Changing the timing, or resuming, looks for the next slot from
now: the slots of a paused schedule are not fired later. Firing is
`jobapi.services.schedules_fire`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import BadRequest, NotFound, Unprocessable
from jobapi.schemas import JobCreate
from jobapi.services import schedules_slots as slots
from jobapi.services import submission
from jobapi.services.listings import created_id_cursor, decode_cursor, keyset_page
from jobapi.services.schedules_models import (
    Schedule,
    ScheduleCreate,
    ScheduleRun,
    ScheduleUpdate,
)
from jobapi.sql import QUERIES

SHOWN_RUNS = 10
SHOWN_SLOTS = 5
_INSERT = QUERIES["insert_schedule"]
_BY_ID = QUERIES["schedule_by_id"]
_UPDATE = QUERIES["update_schedule"]
_DELETE = QUERIES["delete_schedule"]
_LIST = QUERIES["list_schedules"]
_LAST_RUNS = QUERIES["last_runs"]
_LIST_RUNS = QUERIES["list_runs"]


def timing_of(row: tuple) -> slots.Timing:
    return slots.Timing(cron=row[3], timezone=row[4], interval_seconds=row[5], anchor=row[6])


def run_from_row(row: tuple) -> ScheduleRun:
    return ScheduleRun(slot=row[0], outcome=row[1], job_id=row[2], missed=row[3],
                       reason=row[4], handled_at=row[5])


def schedule_from_row(row: tuple, *, now: datetime | None = None,
                      runs: list[ScheduleRun] | None = None) -> Schedule:
    """A Schedule from a `schedule_columns` row; with `now`, its next fire times."""
    upcoming: list[datetime] = []
    if now is not None and row[10]:
        upcoming = slots.upcoming(timing_of(row), now, SHOWN_SLOTS)
    return Schedule(
        id=row[0], owner_id=row[1], name=row[2], cron=row[3], timezone=row[4],
        interval_seconds=row[5], job=row[7], overlap=row[8], catchup=row[9], enabled=row[10],
        keep_last=row[14], next_fire_at=row[11], next_fire_times=upcoming, last_runs=runs or [],
        created_at=row[12], updated_at=row[13],
    )


def _not_found(schedule_id: uuid.UUID) -> NotFound:
    return NotFound(f"There is no schedule {schedule_id}.",
                    hint="GET /api/v1/schedules lists your schedules.")


async def _checked_job(job: JobCreate, *, allow_private_networks: bool,
                       known_spiders: set[str] | None) -> str:
    try:
        await submission.prepare(job, allow_private_networks=allow_private_networks,
                                 known_spiders=known_spiders)
    except Unprocessable as exc:  # the field is inside the schedule's job body
        field = f"job.{exc.field}" if exc.field else "job"
        raise Unprocessable(f"job.{exc.message}" if exc.field else exc.message, field=field,
                            hint=exc.hint) from None
    return msgspec.json.encode(job).decode()


def _next_fire(timing: slots.Timing, enabled: bool, now: datetime) -> datetime | None:
    return slots.next_slot(timing, now) if enabled else None


async def create_schedule(pool: AsyncConnectionPool, user: CurrentUser, body: ScheduleCreate, *,
                          allow_private_networks: bool,
                          known_spiders: set[str] | None) -> Schedule:
    """Store a schedule of `user`'s; its first slot is the first after now."""
    now = datetime.now(UTC)
    timing = slots.Timing(cron=body.cron, timezone=body.timezone,
                          interval_seconds=body.interval_seconds, anchor=now.replace(microsecond=0))
    slots.check(timing)
    job = await _checked_job(body.job, allow_private_networks=allow_private_networks,
                             known_spiders=known_spiders)
    async with pool.connection() as conn:
        row = await (await conn.execute(_INSERT, {
            "id": uuid.uuid4(), "owner_id": user.id, "name": body.name, "cron": body.cron,
            "timezone": body.timezone, "interval_seconds": body.interval_seconds,
            "anchor": timing.anchor, "job": job, "overlap": body.overlap,
            "catchup": body.catchup, "enabled": body.enabled, "keep_last": body.keep_last,
            "next_fire_at": _next_fire(timing, body.enabled, now),
        })).fetchone()
    return schedule_from_row(row, now=now)


async def get_schedule_row(pool: AsyncConnectionPool, schedule_id: uuid.UUID,
                           user: CurrentUser) -> tuple:
    async with pool.connection() as conn:
        row = await (await conn.execute(_BY_ID, (schedule_id,))).fetchone()
    if row is None or not (user.is_admin or row[1] == user.id):
        raise _not_found(schedule_id)
    return row


async def get_schedule(pool: AsyncConnectionPool, schedule_id: uuid.UUID,
                       user: CurrentUser) -> Schedule:
    """The schedule with its next fire times and its last runs, newest first."""
    row = await get_schedule_row(pool, schedule_id, user)
    async with pool.connection() as conn:
        runs = await (await conn.execute(_LAST_RUNS, (schedule_id, SHOWN_RUNS))).fetchall()
    return schedule_from_row(row, now=datetime.now(UTC), runs=[run_from_row(r) for r in runs])


async def list_schedules(pool: AsyncConnectionPool, user: CurrentUser, *, cursor: str | None,
                         limit: int) -> tuple[list[Schedule], str | None]:
    """The user's schedules (an admin's: all), newest first."""
    after_created, after_id = created_id_cursor(cursor)
    params = {"owner": None if user.is_admin else user.id, "after_created": after_created,
              "after_id": after_id}
    rows, next_cursor = await keyset_page(pool, _LIST, params, limit,
                                          lambda r: (r[12], str(r[0])))
    return [schedule_from_row(r) for r in rows], next_cursor


async def list_runs(pool: AsyncConnectionPool, schedule_id: uuid.UUID, user: CurrentUser, *,
                    cursor: str | None, limit: int) -> tuple[list[ScheduleRun], str | None]:
    """Every slot the schedule's schedulers handled, newest first."""
    await get_schedule_row(pool, schedule_id, user)
    before = None
    if cursor is not None:
        (value,) = decode_cursor(cursor, 1)
        try:
            before = datetime.fromisoformat(str(value))
        except ValueError:
            raise BadRequest("The cursor is not one this API made.", field="cursor") from None
    rows, next_cursor = await keyset_page(pool, _LIST_RUNS, {"schedule": schedule_id,
                                                             "before": before}, limit,
                                          lambda r: (r[0],))
    return [run_from_row(r) for r in rows], next_cursor


async def update_schedule(pool: AsyncConnectionPool, schedule_id: uuid.UUID, user: CurrentUser,
                          body: ScheduleUpdate, *, allow_private_networks: bool,
                          known_spiders: set[str] | None) -> Schedule:
    """Change the given fields; a new timing or a resume looks for the next slot from now."""
    row = await get_schedule_row(pool, schedule_id, user)
    now = datetime.now(UTC)
    if body.cron is not None and body.interval_seconds is not None:
        slots.check(slots.Timing(cron=body.cron, interval_seconds=body.interval_seconds,
                                 anchor=now))  # refuses both, naming the fields
    cron, interval = row[3], row[5]
    if body.cron is not None:
        cron, interval = body.cron, None
    elif body.interval_seconds is not None:
        cron, interval = None, body.interval_seconds
    timing = slots.Timing(cron=cron, timezone=body.timezone or row[4],
                          interval_seconds=interval, anchor=row[6])
    retimed = timing != timing_of(row)
    if retimed:
        timing = msgspec.structs.replace(timing, anchor=now.replace(microsecond=0))
    slots.check(timing)
    enabled = row[10] if body.enabled is None else body.enabled
    retime = retimed or enabled != row[10]
    next_fire_at = _next_fire(timing, enabled, now) if retime else None
    job: Any = msgspec.json.encode(row[7]).decode()
    if body.job is not None:
        job = await _checked_job(body.job, allow_private_networks=allow_private_networks,
                                 known_spiders=known_spiders)
    async with pool.connection() as conn:
        updated = await (await conn.execute(_UPDATE, {
            "id": schedule_id, "name": body.name or row[2], "cron": timing.cron,
            "timezone": timing.timezone, "interval_seconds": timing.interval_seconds,
            "anchor": timing.anchor, "job": job, "overlap": body.overlap or row[8],
            "catchup": body.catchup or row[9], "enabled": enabled,
            "keep_last": row[14] if body.keep_last is None else body.keep_last,
            "retime": retime, "next_fire_at": next_fire_at,
        })).fetchone()
    if updated is None:
        raise _not_found(schedule_id)
    return schedule_from_row(updated, now=now)


async def set_enabled(pool: AsyncConnectionPool, schedule_id: uuid.UUID, user: CurrentUser,
                      enabled: bool) -> Schedule:
    """Pause or resume: a resume looks for the next slot from now."""
    # No job body changes, so none is checked: the two flags are never read.
    return await update_schedule(pool, schedule_id, user, ScheduleUpdate(enabled=enabled),
                                 allow_private_networks=True, known_spiders=None)


async def delete_schedule(pool: AsyncConnectionPool, schedule_id: uuid.UUID,
                          user: CurrentUser) -> None:
    """Delete the schedule and its runs; the jobs it submitted stay."""
    await get_schedule_row(pool, schedule_id, user)
    async with pool.connection() as conn:
        await conn.execute(_DELETE, (schedule_id,))
