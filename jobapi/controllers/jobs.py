"""`/api/v1/jobs`: submit, list, read, cancel, watch, and read what a job crawled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import msgspec
import redis.asyncio as aioredis
from litestar import Controller, Request, Response, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.controllers import (
    AppSettings,
    Catalog,
    Cursor,
    Limiter,
    Limits,
    Pool,
    RedisAsync,
    Scrapyd,
    errors,
)
from jobapi.schemas import (
    ItemList,
    Job,
    JobCreate,
    JobEvent,
    JobList,
    JobLog,
    JobStatus,
    JobSummary,
    LinkList,
    PageList,
)
from jobapi.services import cancel, crawllog, frontier, listings, retention, summary
from jobapi.services import jobs as service
from jobapi.services import submission as submissions

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Rows per page.",
                                      examples=[Example(value=50)])]
UrlPrefix = Annotated[
    str | None, QueryParameter(max_length=2048, pattern=r"^[^\x00-\x1f\x7f]*$",
                               description="Only URLs that start with this."),
]
EVENT_INTERVAL = 1.0
EVENT_HEARTBEAT = 15.0
EVENT_MAX_SECONDS = 3600.0

_JOB_EXAMPLE = {
    "start_urls": ["https://example.org/"], "spider": "site", "max_pages": 1000,
    "max_depth": 3, "allowed_domains": ["example.org"], "workers": 2, "tags": ["demo"],
    "settings": {"DOWNLOAD_DELAY": 0.5},
}


class JobController(Controller):
    path = "/api/v1/jobs"
    tags = ["jobs"]

    @post(
        "/", operation_id="createJob", status_code=201,
        responses={
            **errors(409, 413, 429, 502, 503),
            200: ResponseSpec(data_container=Job, generate_examples=False,
                              description="The job an earlier request with the same "
                                          "Idempotency-Key created."),
        },
    )
    async def create_job(
        self,
        request: Request[CurrentUser, Any, Any],
        data: Annotated[JobCreate, BodyKwarg(media_type=RequestEncodingType.JSON, examples=[
            Example(summary="A site, 2 workers", value=_JOB_EXAMPLE)])],
        pool: Pool,
        redis_async: RedisAsync,
        scrapyd: Scrapyd,
        app_settings: AppSettings,
        limiter: Limiter,
        rate_limits: Limits,
        spider_catalog: Catalog,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(name="Idempotency-Key", min_length=1, max_length=255,
                      description="Resending with the same key returns the same job."),
        ] = None,
    ) -> Job:
        """Submit a crawl job.

        Stores the job, seeds the frontier with `start_urls` and schedules `workers`
        crawler processes on the scrapyd nodes. `settings` overrides Scrapy settings
        from an allow-list (DOWNLOAD_DELAY, DOWNLOAD_TIMEOUT, CONCURRENT_REQUESTS,
        CONCURRENT_REQUESTS_PER_DOMAIN, AUTOTHROTTLE_*, RETRY_*, REDIRECT_MAX_TIMES,
        DEPTH_PRIORITY, DOWNLOAD_MAXSIZE, CLOSESPIDER_TIMEOUT, CLOSESPIDER_ERRORCOUNT,
        USER_AGENT, LOG_LEVEL). URLs on private networks are refused unless the
        operator allows them. If scrapyd fails, the job is marked failed with the
        reason and the answer is 502 or 503.
        """
        user = request.user
        await limiter.hit("jobs", str(user.id), rate_limits.jobs_per_user,
                          what="job submissions")
        submission = await submissions.create_job(
            pool=pool, redis_client=redis_async, scrapyd=scrapyd, user=user, body=data,
            idempotency_key=idempotency_key,
            allow_private_networks=app_settings.allow_private_networks,
            known_spiders=await spider_catalog.names(),
            crawler_overrides=request.app.state.crawler_overrides,
        )
        if not submission.created:
            return Response(submission.job, status_code=200)  # type: ignore[return-value]
        return submission.job

    @get("/", operation_id="listJobs", responses=errors())
    async def list_jobs(
        self,
        request: Request[CurrentUser, Any, Any],
        pool: Pool,
        status: FromQuery[JobStatus | None] = None,
        spider: Annotated[str | None, QueryParameter(max_length=64, pattern=r"^[A-Za-z0-9_]+$")
                          ] = None,
        tag: Annotated[str | None, QueryParameter(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
                       ] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> JobList:
        """Your jobs (all jobs for an admin), newest first, filtered by status, spider or tag."""
        items, next_cursor = await listings.list_jobs(
            pool, request.user, status=status, spider=spider, tag=tag, cursor=cursor,
            limit=limit,
        )
        return JobList(items=items, next_cursor=next_cursor)

    @get("/{job_id:uuid}", operation_id="getJob", responses=errors(404))
    async def get_job(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID], state: State,
    ) -> Job:
        """One job with its stats; a job that is not finished carries live frontier counters."""
        # The pool and Redis from the app's state, not as two dependencies: Litestar
        # resolves two in a task group of their own, a tenth of this route's cost.
        return await service.read_job(state.pool, state.redis_async, job_id, request.user)

    @get("/{job_id:uuid}/summary", operation_id="getJobSummary", responses=errors(404))
    async def get_job_summary(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID], pool: Pool,
        sites: Annotated[int | None, QueryParameter(
            ge=0, le=1_000_000, description="At most this many rows of the per-site table, "
            "the most pages first (default: all; 0 leaves the table out).")] = None,
    ) -> JobSummary:
        """What the job fetched, by status class; errors by cause, most frequent first, with
        an example URL; URLs robots.txt kept it from; crawl events; when the page cap
        ended the crawl, that the graph is cut and the command that lifts the cap; and
        per site, its pages by status class, its errors and what robots.txt did."""
        job = await service.get_job_for_user(pool, job_id, request.user)
        return await summary.job_summary(pool, job, sites)

    @get("/{job_id:uuid}/log", operation_id="getJobLog", responses=errors(404))
    async def get_job_log(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool, scrapyd: Scrapyd,
        max_bytes: Annotated[int, QueryParameter(
            ge=1, le=crawllog.MAX_TAIL_BYTES,
            description="At most this many bytes of the end of each process's log.")] = 65_536,
    ) -> JobLog:
        """The tail of each of the job's crawler process logs, read from its scrapyd node.

        The text is the crawler's own log and quotes crawled URLs and server answers:
        show it as text. A process whose node does not answer says so in its text."""
        job = await service.get_job_for_user(pool, job_id, request.user)
        return await crawllog.job_log(scrapyd, job, max_bytes)

    @post("/{job_id:uuid}/cancel", operation_id="cancelJob", status_code=200,
          responses=errors(404, 409, 503))
    async def cancel_job(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool, redis_async: RedisAsync, scrapyd: Scrapyd,
    ) -> Job:
        """Cancel a job: it is marked cancelled and its crawler processes are stopped.

        The processes get a graceful stop and are killed if still alive after 20 s;
        then the job's frontier is cleared. Cancelling a cancelled job returns it
        unchanged; a finished or failed job is a 409.
        """
        job, clean_up = await cancel.cancel_job(
            pool=pool, redis_client=redis_async, scrapyd=scrapyd, job_id=job_id,
            user=request.user)
        if clean_up is None:
            return job
        return Response(job, background=BackgroundTask(clean_up))  # type: ignore[return-value]

    @delete("/{job_id:uuid}", operation_id="deleteJob", status_code=202,
            responses=errors(404, 409))
    async def delete_job(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID], pool: Pool,
    ) -> retention.Deletion:
        """Delete a job that has ended, with the graph builds made from it.

        It leaves every listing and read at once; its pages, links, items, events,
        WARC files and graphs are purged in the background, in batches that never
        hold a lock a running crawl waits on. A job that has not ended is a 409
        (cancel it first), as is one a running recrawl reads or whose graph is
        being built.
        """
        return await retention.delete_job(pool, job_id, request.user)

    @get("/{job_id:uuid}/pages", operation_id="listJobPages", responses=errors(404))
    async def pages(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool,
        status: Annotated[int | None, QueryParameter(ge=0, le=999)] = None,
        url_prefix: UrlPrefix = None, cursor: Cursor = None, limit: Limit = 100,
    ) -> PageList:
        """The pages a job fetched, by URL, filtered by HTTP status or URL prefix."""
        return await _page_list(pool, job_id, request.user, status, url_prefix, cursor, limit,
                                errors_only=False)

    @get("/{job_id:uuid}/errors", operation_id="listJobErrors", responses=errors(404))
    async def job_errors(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool,
        status: Annotated[int | None, QueryParameter(ge=0, le=999)] = None,
        url_prefix: UrlPrefix = None, cursor: Cursor = None, limit: Limit = 100,
    ) -> PageList:
        """The fetches that failed: HTTP status 400 or more, 0 (no answer), or an error."""
        return await _page_list(pool, job_id, request.user, status, url_prefix, cursor, limit,
                                errors_only=True)

    @get("/{job_id:uuid}/links", operation_id="listJobLinks", responses=errors(404))
    async def links(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool, url_prefix: UrlPrefix = None,
        target_prefix: UrlPrefix = None, cursor: Cursor = None, limit: Limit = 100,
    ) -> LinkList:
        """The links a job found, by source URL, filtered by source or target URL prefix."""
        await service.get_job_row(pool, job_id, request.user)
        items, next_cursor = await listings.list_links(
            pool, job_id, url_prefix=url_prefix, target_prefix=target_prefix, cursor=cursor,
            limit=limit)
        return LinkList(items=items, next_cursor=next_cursor)

    @get("/{job_id:uuid}/items", operation_id="listJobItems", responses=errors(404))
    async def items(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool,
        item_type: Annotated[str | None, QueryParameter(max_length=128,
                                                        pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
        url_prefix: UrlPrefix = None, cursor: Cursor = None, limit: Limit = 100,
    ) -> ItemList:
        """The items a job's spider extracted, filtered by item type or URL prefix."""
        await service.get_job_row(pool, job_id, request.user)
        items, next_cursor = await listings.list_items(
            pool, job_id, item_type=item_type, url_prefix=url_prefix, cursor=cursor, limit=limit)
        return ItemList(items=items, next_cursor=next_cursor)

    @get("/{job_id:uuid}/events", operation_id="streamJobEvents", responses=errors(404),
         media_type="text/event-stream")
    async def events(
        self, request: Request[CurrentUser, Any, Any], job_id: FromPath[uuid.UUID],
        pool: Pool, redis_async: RedisAsync,
    ) -> ServerSentEvent:
        """A Server-Sent Events stream of the job's state and stats.

        An event `state` (data: a JobEvent as JSON) is sent at once and whenever the
        status, stats or frontier counters change; the stream ends after the job
        reaches finished, failed or cancelled. Comments keep idle connections open.
        """
        await service.get_job_row(pool, job_id, request.user)
        return ServerSentEvent(_job_events(pool, redis_async, job_id))


async def _job_events(
    pool: AsyncConnectionPool, redis_client: aioredis.Redis, job_id: uuid.UUID,
) -> AsyncIterator[ServerSentEventMessage]:
    last: bytes | None = None
    quiet = 0.0
    deadline = anyio.current_time() + EVENT_MAX_SECONDS
    sequence = 0
    while anyio.current_time() < deadline:
        state = await service.job_state(pool, job_id)
        if state is None:
            return
        _, status, stats, error, close_reason = state
        live = None if status in service.TERMINAL else await frontier.stats(
            redis_client, str(job_id))
        event = JobEvent(id=job_id, status=status, stats=stats or {}, frontier=live,
                         error=error, close_reason=close_reason)
        encoded = msgspec.json.encode(event)
        if encoded != last:
            sequence += 1
            last = encoded
            quiet = 0.0
            yield ServerSentEventMessage(data=encoded.decode(), event="state", id=sequence)
        elif quiet >= EVENT_HEARTBEAT:
            quiet = 0.0
            yield ServerSentEventMessage(comment="keep-alive")
        if status in service.TERMINAL:
            return
        await anyio.sleep(EVENT_INTERVAL)
        quiet += EVENT_INTERVAL


async def _page_list(pool: AsyncConnectionPool, job_id: uuid.UUID, user: CurrentUser,
                     status: int | None, url_prefix: str | None, cursor: str | None,
                     limit: int, *, errors_only: bool) -> PageList:
    await service.get_job_row(pool, job_id, user)
    items, next_cursor = await listings.list_pages(
        pool, job_id, status=status, url_prefix=url_prefix, cursor=cursor, limit=limit,
        errors_only=errors_only)
    return PageList(items=items, next_cursor=next_cursor)
