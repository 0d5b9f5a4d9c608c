"""`/api/v1/schedules`: recurring crawl jobs; create, list, show, change, pause, resume, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath

from jobapi.auth import CurrentUser
from jobapi.controllers import AppSettings, Catalog, Cursor, Pool, RowsPerPage, errors
from jobapi.services import schedules as service
from jobapi.services.schedules_models import (
    Schedule,
    ScheduleCreate,
    ScheduleList,
    ScheduleRunList,
    ScheduleUpdate,
)

_EXAMPLE = {"name": "nightly example.org", "cron": "0 3 * * *", "timezone": "Europe/Paris",
            "job": {"start_urls": ["https://example.org/"], "max_pages": 1000},
            "overlap": "skip", "catchup": "latest"}


class ScheduleController(Controller):
    path = "/api/v1/schedules"
    tags = ["schedules"]

    @post("/", operation_id="createSchedule", status_code=201, responses=errors(413))
    async def create_schedule(
        self, request: Request[CurrentUser, Any, Any],
        data: Annotated[ScheduleCreate, BodyKwarg(media_type=RequestEncodingType.JSON, examples=[
            Example(summary="Every night at 03:00, Paris time", value=_EXAMPLE)])],
        pool: Pool, app_settings: AppSettings, spider_catalog: Catalog,
    ) -> Schedule:
        """Create a schedule: a job body submitted at each slot of `cron` (in `timezone`)
        or every `interval_seconds`.

        `overlap`: `skip` a slot while the schedule's previous job is still going, or
        `queue` it (submit it anyway; scrapyd starts it when a crawler slot is free).
        `catchup` after a time when no scheduler ran: `latest` fires the newest missed
        slot once, `none` fires none. The job body is checked as `POST /api/v1/jobs`
        checks it; each fire is a job of yours, under your limits.
        """
        return await service.create_schedule(
            pool, request.user, data, allow_private_networks=app_settings.allow_private_networks,
            known_spiders=await spider_catalog.names())

    @get("/", operation_id="listSchedules", responses=errors())
    async def list_schedules(self, request: Request[CurrentUser, Any, Any], pool: Pool,
                             cursor: Cursor = None, limit: RowsPerPage = 50) -> ScheduleList:
        """Your schedules (all of them for an admin), newest first."""
        items, next_cursor = await service.list_schedules(pool, request.user, cursor=cursor,
                                                          limit=limit)
        return ScheduleList(items=items, next_cursor=next_cursor)

    @get("/{schedule_id:uuid}", operation_id="getSchedule", responses=errors(404))
    async def get_schedule(self, request: Request[CurrentUser, Any, Any],
                           schedule_id: FromPath[uuid.UUID], pool: Pool) -> Schedule:
        """One schedule with its next fire times and its last runs (newest first)."""
        return await service.get_schedule(pool, schedule_id, request.user)

    @get("/{schedule_id:uuid}/runs", operation_id="listScheduleRuns", responses=errors(404))
    async def list_runs(self, request: Request[CurrentUser, Any, Any],
                        schedule_id: FromPath[uuid.UUID], pool: Pool, cursor: Cursor = None,
                        limit: RowsPerPage = 50) -> ScheduleRunList:
        """Every slot handled: the job submitted, or why none was (refused, failed, skipped,
        missed), newest first."""
        items, next_cursor = await service.list_runs(pool, schedule_id, request.user,
                                                     cursor=cursor, limit=limit)
        return ScheduleRunList(items=items, next_cursor=next_cursor)

    @patch("/{schedule_id:uuid}", operation_id="updateSchedule", responses=errors(404, 413))
    async def update_schedule(
        self, request: Request[CurrentUser, Any, Any], schedule_id: FromPath[uuid.UUID],
        data: Annotated[ScheduleUpdate, BodyKwarg(media_type=RequestEncodingType.JSON, examples=[
            Example(summary="Every six hours, UTC",
                    value={"cron": "0 */6 * * *", "timezone": "UTC"})])],
        pool: Pool, app_settings: AppSettings, spider_catalog: Catalog,
    ) -> Schedule:
        """Change a schedule's fields. A new timing counts its slots from now."""
        return await service.update_schedule(
            pool, schedule_id, request.user, data,
            allow_private_networks=app_settings.allow_private_networks,
            known_spiders=await spider_catalog.names())

    @post("/{schedule_id:uuid}/pause", operation_id="pauseSchedule", status_code=200,
          responses=errors(404))
    async def pause(self, request: Request[CurrentUser, Any, Any],
                    schedule_id: FromPath[uuid.UUID], pool: Pool) -> Schedule:
        """Pause: no slot fires until it is resumed."""
        return await service.set_enabled(pool, schedule_id, request.user, False)

    @post("/{schedule_id:uuid}/resume", operation_id="resumeSchedule", status_code=200,
          responses=errors(404))
    async def resume(self, request: Request[CurrentUser, Any, Any],
                     schedule_id: FromPath[uuid.UUID], pool: Pool) -> Schedule:
        """Resume: the next slot after now fires; the slots of the pause do not."""
        return await service.set_enabled(pool, schedule_id, request.user, True)

    @delete("/{schedule_id:uuid}", operation_id="deleteSchedule", status_code=204,
            responses=errors(404))
    async def delete_schedule(self, request: Request[CurrentUser, Any, Any],
                              schedule_id: FromPath[uuid.UUID], pool: Pool) -> None:
        """Delete a schedule and its runs; the jobs it submitted stay."""
        await service.delete_schedule(pool, schedule_id, request.user)
