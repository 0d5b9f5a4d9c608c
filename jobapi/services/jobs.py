"""Jobs: submit, list, read, cancel, and read what a job crawled.

Ownership: every query goes through `get_job_for_user` or a listing filtered by
owner; another user's job is a NotFound (404) for every verb, an admin sees all.

Submission (`create_job`): validate (private-address guard, settings
allow-list), store the job `pending`, seed the frontier with the start URLs,
schedule `workers` crawler processes on the least busy scrapyd nodes that
answer (scrapyd job id `<job id>-<n>`, spider argument `job_id` and one
argument per job parameter; start URLs too long for a command line reach the
crawlers through the frontier only). Any failure after the row exists marks
the job `failed` with the reason, cancels what was already scheduled and
clears the frontier, then answers 502/503: a job never sits silently in
pending.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, LiteralString
from urllib.parse import urlsplit

import anyio
import msgspec
import redis
import redis.asyncio as aioredis
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import ApiError, BadRequest, Conflict, NotFound, Unprocessable
from jobapi.schemas import Item, Job, JobCreate, Link, Page, ScrapydJobRef
from jobapi.scrapyd import ScrapydClient
from jobapi.services import frontier
from jobapi.services.urlguard import check_urls
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.jobs")

TERMINAL = frozenset({"finished", "failed", "cancelled"})
# Linux refuses a single argv string over 128 KiB; scrapyd passes spider
# arguments on the command line. Bigger start lists reach the crawler through
# the frontier only.
MAX_START_URLS_ARG = 100_000

# name -> (type, low, high) for numbers, (str, max length) for strings.
ALLOWED_SETTINGS: dict[str, tuple[type, Any, Any]] = {
    "DOWNLOAD_DELAY": (float, 0.0, 60.0),
    "DOWNLOAD_TIMEOUT": (float, 1.0, 300.0),
    "CONCURRENT_REQUESTS": (int, 1, 256),
    "CONCURRENT_REQUESTS_PER_DOMAIN": (int, 1, 64),
    "AUTOTHROTTLE_ENABLED": (bool, None, None),
    "AUTOTHROTTLE_TARGET_CONCURRENCY": (float, 0.1, 64.0),
    "AUTOTHROTTLE_MAX_DELAY": (float, 0.0, 300.0),
    "RETRY_ENABLED": (bool, None, None),
    "RETRY_TIMES": (int, 0, 10),
    "REDIRECT_MAX_TIMES": (int, 0, 50),
    "DEPTH_PRIORITY": (int, -10, 10),
    "DOWNLOAD_MAXSIZE": (int, 1024, 1024**3),
    "CLOSESPIDER_TIMEOUT": (int, 0, 7 * 86400),
    "CLOSESPIDER_ERRORCOUNT": (int, 0, 10_000_000),
    "USER_AGENT": (str, 1, 512),
    "LOG_LEVEL": (str, 1, 16),
}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}

# For listings: the jsonb documents come as text and go out untouched (msgspec.Raw),
# which spares decoding and re-encoding four documents per row.
LIST_COLUMNS: LiteralString = (
    "id, owner_id, spider, status, params::text, settings::text, tags, priority, workers, "
    "scrapyd_jobs, stats::text, close_reason, error, created_at, updated_at, started_at, "
    "finished_at"
)
_INSERT_JOB = QUERIES["insert_job"]
_JOB_BY_KEY = QUERIES["job_by_key"]
_JOB_BY_ID = QUERIES["job_by_id"]
_SET_SCRAPYD_JOBS = QUERIES["set_scrapyd_jobs"]
_MARK_FAILED = QUERIES["mark_failed"]
_MARK_CANCELLED = QUERIES["mark_cancelled"]


def job_from_row(row: tuple, live: dict[str, Any] | None = None, *, raw: bool = False) -> Job:
    """A Job from a job-query row, or from LIST_COLUMNS with `raw` (JSON text kept as is)."""
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


def _not_found(job_id: uuid.UUID) -> NotFound:
    return NotFound(f"There is no job {job_id}.", hint="GET /api/v1/jobs lists your jobs.")


async def get_job_row(pool: AsyncConnectionPool, job_id: uuid.UUID, user: CurrentUser) -> tuple:
    row = await _fetch_job(pool, job_id)
    if row is None or not _may_see(row, user):
        raise _not_found(job_id)
    return row


async def get_job_for_user(
    pool: AsyncConnectionPool, job_id: uuid.UUID, user: CurrentUser,
    redis_client: aioredis.Redis | None = None,
) -> Job:
    """The job if `user` owns it (or is an admin); NotFound otherwise.

    With `redis_client`, a job that is not finished carries the frontier's live
    counters in `frontier`.
    """
    row = await get_job_row(pool, job_id, user)
    live = None
    if redis_client is not None and row[3] not in TERMINAL:
        live = await frontier.stats(redis_client, str(job_id))
    return job_from_row(row, live)


# --- submission -----------------------------------------------------------------


def _check_settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        field = f"settings.{name}"
        rule = ALLOWED_SETTINGS.get(name)
        if rule is None:
            raise Unprocessable(
                f"{field}: {name!r} is not a setting a job may override.",
                field=field, hint="Allowed: " + ", ".join(sorted(ALLOWED_SETTINGS)) + ".",
            )
        kind, low, high = rule
        if kind is bool:
            if not isinstance(value, bool):
                raise Unprocessable(f"{field} must be true or false.", field=field)
        elif kind is str:
            if not isinstance(value, str) or not low <= len(value) <= high or any(
                ord(c) < 32 for c in value
            ):
                raise Unprocessable(f"{field} must be a string of {low} to {high} printable "
                                    "characters.", field=field)
            if name == "LOG_LEVEL" and value.upper() not in _LOG_LEVELS:
                raise Unprocessable(f"{field} must be one of {sorted(_LOG_LEVELS)}.", field=field)
        else:
            if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind is int and not isinstance(value, int)
            ) or not low <= value <= high:
                raise Unprocessable(
                    f"{field} must be {'an integer' if kind is int else 'a number'} from {low} "
                    f"to {high}.", field=field,
                )
        checked[name] = value
    return checked


def _check_patterns(body: JobCreate) -> None:
    for name in ("include", "exclude"):
        for i, pattern in enumerate(getattr(body, name)):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise Unprocessable(f"{name}[{i}] is not a regular expression: {exc}.",
                                    field=f"{name}[{i}]") from None


def _url_hosts(body: JobCreate) -> list[tuple[str, str, str, int]]:
    hosts = []
    for i, url in enumerate(body.start_urls):
        field = f"start_urls[{i}]"
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            raise Unprocessable(f"{field} is not a valid URL: {url[:200]}", field=field,
                                hint="Give an absolute http or https URL.") from None
        if not parts.hostname:
            raise Unprocessable(f"{field} has no host: {url[:200]}", field=field,
                                hint="Give an absolute http or https URL.")
        hosts.append((field, url, parts.hostname, port))
    return hosts


def job_params(body: JobCreate) -> dict[str, Any]:
    return {
        "start_urls": body.start_urls, "max_pages": body.max_pages, "max_depth": body.max_depth,
        "allowed_domains": body.allowed_domains, "include": body.include,
        "exclude": body.exclude, "follow_nofollow": body.follow_nofollow,
        "render_js": _render_mode(body.render_js), "render_selector": body.render_selector,
        "obey_robots": body.obey_robots,
    }


def _render_mode(value: bool | str) -> str:
    if isinstance(value, bool):
        return "always" if value else "never"
    return value


def spider_args(job_id: str, params: Mapping[str, Any], workers: int = 1) -> dict[str, str]:
    """The scrapyd spider arguments of a job: strings as they are, the rest as JSON.

    `max_pages` is the job's budget: each of its `workers` gets an equal share
    (rounded up), so that together they store about `max_pages` pages.

    Start URLs too long for one command-line argument reach the crawlers through
    the frontier only; the spider then scopes the crawl by `allowed_domains`,
    which default to the start URLs' hosts.
    """
    args = {"job_id": job_id}
    for name, value in params.items():
        if value is None:
            continue
        if name == "max_pages" and workers > 1:
            value = -(-int(value) // workers)
        args[name] = value if isinstance(value, str) else json.dumps(value)
    if len(args.get("start_urls", "")) > MAX_START_URLS_ARG:
        args["start_urls"] = "[]"
        if not params.get("allowed_domains"):
            hosts = sorted({urlsplit(u).netloc.rsplit("@", 1)[-1].lower()
                            for u in params["start_urls"]})
            args["allowed_domains"] = json.dumps(hosts)
            if len(args["allowed_domains"]) > MAX_START_URLS_ARG:
                raise Unprocessable(
                    f"start_urls: {len(hosts)} different hosts are too many to scope a crawl "
                    "by.", field="start_urls",
                    hint="Give allowed_domains, or split the job.")
    return args


def _same_request(row: tuple, body: JobCreate, params: dict, overrides: dict) -> bool:
    return (row[2] == body.spider and row[4] == params and row[5] == overrides
            and list(row[6]) == body.tags and row[7] == body.priority and row[8] == body.workers)


class Submission(msgspec.Struct, frozen=True):
    job: Job
    created: bool


async def create_job(
    *,
    pool: AsyncConnectionPool,
    redis_client: redis.Redis,
    scrapyd: ScrapydClient,
    user: CurrentUser,
    body: JobCreate,
    idempotency_key: str | None,
    allow_private_networks: bool,
    known_spiders: set[str] | None,
    crawler_overrides: Mapping[str, str],
) -> Submission:
    """Store, seed and schedule a job; replay the stored one for a reused Idempotency-Key."""
    overrides = _check_settings(body.settings)
    _check_patterns(body)
    hosts = _url_hosts(body)
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
        settings = {**{k: _setting_text(v) for k, v in overrides.items()}, **crawler_overrides}
        for n, node in enumerate(await scrapyd.place(body.workers)):
            jobid = f"{job_id}-{n}"
            await scrapyd.schedule(node, body.spider, jobid, args, settings,
                                   priority=float(body.priority))
            scheduled.append({"node": node.index, "node_url": node.base, "jobid": jobid})
    except Exception as exc:
        # Whatever went wrong, the job must not stay pending.
        reason = (exc.message if isinstance(exc, ApiError)
                  else f"internal error ({type(exc).__name__})")
        await _fail(pool, redis_client, scrapyd, job_id, scheduled, reason)
        raise
    async with pool.connection() as conn:
        row = await (await conn.execute(
            _SET_SCRAPYD_JOBS, (msgspec.json.encode(scheduled).decode(), job_id)
        )).fetchone()
    return Submission(job=job_from_row(row), created=True)


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _replay(row: tuple, body: JobCreate, params: dict, overrides: dict) -> Submission:
    if not _same_request(row, body, params, overrides):
        raise Conflict(
            "This Idempotency-Key was used for a different job.",
            hint="Use a new key for a new job; resend the same body to get the same job.",
        )
    return Submission(job=job_from_row(row), created=False)


async def _fail(
    pool: AsyncConnectionPool, redis_client: redis.Redis, scrapyd: ScrapydClient,
    job_id: uuid.UUID, scheduled: list[dict[str, Any]], reason: str,
) -> None:
    log.warning("job %s failed to start: %s", job_id, reason)
    for entry in scheduled:
        try:
            await scrapyd.cancel(scrapyd.node(entry["node"]), entry["jobid"])
        except ApiError as exc:
            log.warning("job %s: could not cancel %s: %s", job_id, entry["jobid"], exc.message)
    try:
        await frontier.clear(redis_client, str(job_id))
    except ApiError as exc:
        log.warning("job %s: could not clear the frontier: %s", job_id, exc.message)
    async with pool.connection() as conn:
        await conn.execute(_MARK_FAILED, (f"could not start: {reason}",
                                          msgspec.json.encode(scheduled).decode(), job_id))


# --- cancel ---------------------------------------------------------------------------


async def cancel_job(
    *, pool: AsyncConnectionPool, redis_client: redis.Redis, scrapyd: ScrapydClient,
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
    entries = [(_node_for(scrapyd, e), str(e.get("jobid", ""))) for e in row[9] or []]
    for node, jobid in entries:
        try:
            await scrapyd.cancel(node, jobid)
        except ApiError as exc:
            log.warning("job %s: could not stop %s: %s", job_id, jobid, exc.message)
    log.info("job %s cancelled by %s", job_id, user.username)

    async def clean_up() -> None:
        await _stop_processes(scrapyd, entries, job_id)
        try:
            await frontier.clear(redis_client, str(job_id))
        except ApiError as exc:
            log.warning("job %s: could not clear the frontier: %s", job_id, exc.message)

    return job_from_row(row), clean_up


CANCEL_GRACE_SECONDS = 20.0
CANCEL_KILL_SECONDS = 10.0


async def _alive(scrapyd: ScrapydClient, entries: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    alive = []
    for node in {id(n): n for n, _ in entries}.values():
        try:
            listing = await scrapyd.list_jobs(node)
        except ApiError:
            continue
        ids = {j.get("id") for state in ("pending", "running") for j in listing.get(state, [])}
        alive += [(n, jobid) for n, jobid in entries if n is node and jobid in ids]
    return alive


async def _stop_processes(scrapyd: ScrapydClient, entries: list[tuple[Any, str]],
                          job_id: uuid.UUID) -> None:
    for wait, signal in ((CANCEL_GRACE_SECONDS, "KILL"), (CANCEL_KILL_SECONDS, None)):
        with anyio.move_on_after(wait):
            while entries := await _alive(scrapyd, entries):
                await anyio.sleep(0.5)
        if not entries or signal is None:
            break
        for node, jobid in entries:
            log.warning("job %s: %s did not stop in time; killing it", job_id, jobid)
            try:
                await scrapyd.cancel(node, jobid, signal=signal)
            except ApiError as exc:
                log.warning("job %s: could not kill %s: %s", job_id, jobid, exc.message)


def _node_for(scrapyd: ScrapydClient, entry: Mapping[str, Any]):
    for node in scrapyd.nodes:
        if node.base == entry.get("node_url"):
            return node
    return scrapyd.node(int(entry.get("node", 0)))


# --- listings -------------------------------------------------------------------------


def encode_cursor(*values: Any) -> str:
    raw = msgspec.json.encode([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw)
        if not isinstance(values, list) or len(values) != arity or not all(
            isinstance(v, str | int) for v in values
        ):
            raise ValueError
        return values
    except (ValueError, msgspec.DecodeError):
        raise BadRequest("The cursor is not one this API made.", field="cursor",
                         hint="Pass the next_cursor of the previous page unchanged.") from None


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_jobs(
    pool: AsyncConnectionPool, user: CurrentUser, *, status: str | None, spider: str | None,
    tag: str | None, cursor: str | None, limit: int,
) -> tuple[list[Job], str | None]:
    where: list[sql.Composable] = []
    params: list[Any] = []
    if not user.is_admin:
        where.append(sql.SQL("owner_id = %s"))
        params.append(user.id)
    for column, value in (("status", status), ("spider", spider)):
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if tag is not None:
        where.append(sql.SQL("tags @> ARRAY[%s]::text[]"))
        params.append(tag)
    if cursor is not None:
        created, ident = decode_cursor(cursor, 2)
        try:
            created_at, job_uuid = datetime.fromisoformat(str(created)), uuid.UUID(str(ident))
        except ValueError:
            raise BadRequest("The cursor is not one this API made.", field="cursor") from None
        where.append(sql.SQL("(created_at, id) < (%s, %s)"))
        params += [created_at, job_uuid]
    query = sql.SQL("SELECT {} FROM jobs {} ORDER BY created_at DESC, id DESC LIMIT %s").format(
        sql.SQL(LIST_COLUMNS),
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )
    params.append(limit + 1)
    async with pool.connection() as conn:
        # Binary results: timestamps, UUIDs and arrays parse faster than their text.
        rows = await (await conn.execute(query, params, binary=True)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1][13], str(rows[-1][0])) if more else None
    return [job_from_row(r, raw=True) for r in rows], next_cursor


PAGE_COLUMNS: LiteralString = (
    "url, final_url, status, content_type, title, depth, fetched_at, size, content_hash, "
    "elapsed_ms, rendered, error"
)


def _page(row: tuple) -> Page:
    return Page(url=row[0], final_url=row[1], status=row[2], content_type=row[3], title=row[4],
                depth=row[5], fetched_at=row[6], size=row[7], content_hash=row[8],
                elapsed_ms=row[9], rendered=row[10], error=row[11])


async def list_pages(
    pool: AsyncConnectionPool, job_id: uuid.UUID, *, status: int | None,
    url_prefix: str | None, cursor: str | None, limit: int, errors_only: bool = False,
) -> tuple[list[Page], str | None]:
    where = [sql.SQL("job_id = %s")]
    params: list[Any] = [job_id]
    if errors_only:
        where.append(sql.SQL("(status >= 400 OR status = 0 OR error IS NOT NULL)"))
    if status is not None:
        where.append(sql.SQL("status = %s"))
        params.append(status)
    if url_prefix:
        where.append(sql.SQL("url LIKE %s"))
        params.append(_like_prefix(url_prefix))
    if cursor is not None:
        where.append(sql.SQL("url > %s"))
        params.append(str(decode_cursor(cursor, 1)[0]))
    query = sql.SQL("SELECT {} FROM pages WHERE {} ORDER BY url LIMIT %s").format(
        sql.SQL(PAGE_COLUMNS), sql.SQL(" AND ").join(where))
    params.append(limit + 1)
    async with pool.connection() as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_page(r) for r in rows], encode_cursor(rows[-1][0]) if more else None


async def list_links(
    pool: AsyncConnectionPool, job_id: uuid.UUID, *, url_prefix: str | None,
    target_prefix: str | None, cursor: str | None, limit: int,
) -> tuple[list[Link], str | None]:
    where = [sql.SQL("job_id = %s")]
    params: list[Any] = [job_id]
    if url_prefix:
        where.append(sql.SQL("source_url LIKE %s"))
        params.append(_like_prefix(url_prefix))
    if target_prefix:
        where.append(sql.SQL("target_url LIKE %s"))
        params.append(_like_prefix(target_prefix))
    if cursor is not None:
        source, target = decode_cursor(cursor, 2)
        where.append(sql.SQL("(source_url, target_url) > (%s, %s)"))
        params += [str(source), str(target)]
    query = sql.SQL(
        "SELECT source_url, target_url, count, anchor_text, nofollow FROM links WHERE {} "
        "ORDER BY source_url, target_url LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    params.append(limit + 1)
    async with pool.connection() as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    links = [Link(source_url=r[0], target_url=r[1], count=r[2], anchor_text=r[3], nofollow=r[4])
             for r in rows]
    return links, encode_cursor(rows[-1][0], rows[-1][1]) if more else None


async def list_items(
    pool: AsyncConnectionPool, job_id: uuid.UUID, *, item_type: str | None,
    url_prefix: str | None, cursor: str | None, limit: int,
) -> tuple[list[Item], str | None]:
    where = [sql.SQL("job_id = %s")]
    params: list[Any] = [job_id]
    if item_type is not None:
        where.append(sql.SQL("item_type = %s"))
        params.append(item_type)
    if url_prefix:
        where.append(sql.SQL("url LIKE %s"))
        params.append(_like_prefix(url_prefix))
    if cursor is not None:
        where.append(sql.SQL("fingerprint > %s"))
        params.append(str(decode_cursor(cursor, 1)[0]))
    query = sql.SQL(
        "SELECT fingerprint, item_type, url, data, created_at FROM items WHERE {} "
        "ORDER BY fingerprint LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    params.append(limit + 1)
    async with pool.connection() as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [Item(fingerprint=r[0], item_type=r[1], url=r[2], data=r[3], created_at=r[4])
             for r in rows]
    return items, encode_cursor(rows[-1][0]) if more else None


_JOB_STATE = QUERIES["job_state"]


async def job_state(pool: AsyncConnectionPool, job_id: uuid.UUID) -> tuple | None:
    async with pool.connection() as conn:
        return await (await conn.execute(_JOB_STATE, (job_id,))).fetchone()


_COUNT_BY_STATUS = QUERIES["count_jobs_by_status"]


async def count_by_status(pool: AsyncConnectionPool) -> dict[str, int]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(_COUNT_BY_STATUS)).fetchall()
    return {status: int(n) for status, n in rows}
