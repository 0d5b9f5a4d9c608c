"""The bodies of `/api/v1/schedules`: a schedule to create or change, and as the API shows it.

Kept beside the schedule services rather than in `jobapi.schemas` so that the
schedules stay one unit; the shapes follow `jobapi.schemas` (request bodies
refuse unknown fields, limits in `Meta`). A schedule's `job` is a whole job
body (`JobCreate`), validated as a submission would be.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from jobapi.schemas import JobCreate

Overlap = Literal["skip", "queue"]
Catchup = Literal["latest", "none"]
Outcome = Literal["submitted", "failed", "skipped", "missed", "refused"]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                           description="A name without control characters.")]
Cron = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9*/,\- #?]+$",
                           description="Five fields (minute hour day-of-month month "
                                       "day-of-week), or six with seconds first.")]
TimeZone = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$",
                               description="An IANA time zone such as Europe/Paris.")]
Interval = Annotated[int, Meta(ge=1, le=31_622_400, description="Seconds between runs.")]
KeepLast = Annotated[int, Meta(ge=0, le=100_000, description=(
    "Keep only this many newest crawls of the schedule; older ones that have ended are "
    "deleted (0: keep them all)."))]


class ScheduleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A schedule: when (`cron` in `timezone`, or `interval_seconds`) and the job it submits."""

    name: Name
    cron: Cron | None = None
    timezone: TimeZone = "UTC"
    interval_seconds: Interval | None = None
    job: JobCreate
    overlap: Overlap = "skip"
    catchup: Catchup = "latest"
    enabled: bool = True
    keep_last: KeepLast = 0


class ScheduleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields to change; `cron` replaces an interval and `interval_seconds` a cron."""

    name: Name | None = None
    cron: Cron | None = None
    timezone: TimeZone | None = None
    interval_seconds: Interval | None = None
    job: JobCreate | None = None
    overlap: Overlap | None = None
    catchup: Catchup | None = None
    enabled: bool | None = None
    keep_last: KeepLast | None = None


class ScheduleRun(msgspec.Struct, kw_only=True):
    """One slot a scheduler handled: the job it submitted, or why it submitted none."""

    slot: datetime
    outcome: Outcome
    job_id: uuid.UUID | None = None
    missed: int = 0
    reason: str | None = None
    handled_at: datetime


class Schedule(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    owner_id: int
    name: str
    cron: str | None = None
    timezone: str
    interval_seconds: int | None = None
    job: dict[str, Any]
    overlap: Overlap
    catchup: Catchup
    enabled: bool
    keep_last: int = 0
    next_fire_at: datetime | None = None
    next_fire_times: list[datetime] = []
    last_runs: list[ScheduleRun] = []
    created_at: datetime
    updated_at: datetime


class ScheduleList(msgspec.Struct, kw_only=True):
    items: list[Schedule]
    next_cursor: str | None = None


class ScheduleRunList(msgspec.Struct, kw_only=True):
    items: list[ScheduleRun]
    next_cursor: str | None = None
