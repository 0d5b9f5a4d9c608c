"""The job API: `create_app(settings)` builds the Litestar application.

Serve it with `uvicorn --factory jobapi.app:app_from_env`. OpenAPI is at
`/schema` (interactive page) and `/schema/openapi.json`.

Adding routes (for other parts of crawlgraph):
- A controller goes in `jobapi/controllers/` and in `ROUTE_HANDLERS`.
- Every route is authenticated by `jobapi.auth.JWTAuthMiddleware` unless its
  handler (or controller) has `opt={"exclude_from_auth": True}`. The user is
  `request.user`, a `jobapi.auth.CurrentUser(id, username, role)`; an admin has
  `role == "admin"` (`user.is_admin`); `jobapi.auth.require_admin(user)` is a 403
  for anyone else.
- Ownership: a user sees only their own jobs; another user's job is a 404 for
  every verb. `await jobapi.services.jobs.get_job_for_user(pool, job_id, user)`
  returns the job or raises that NotFound; do the same for your own resources.
- Dependencies every handler can ask for by name: `pool` (psycopg
  `AsyncConnectionPool`, also `app.state.pool`), `app_settings` (not `settings`,
  which a body field of that name would shadow), `scrapyd`,
  `redis_sync`, `redis_async`, `limiter`, `rate_limits`, `spider_catalog`.
- Raise `jobapi.errors` classes (NotFound, Conflict, Unprocessable(field=...),
  ...): the one exception handler here turns every error into the one JSON shape
  `{"error": {"code", "message", "hint", "field", "request_id"}}`; document them
  with `responses=jobapi.controllers.errors(404, ...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
import psycopg
import redis
import redis.asyncio as aioredis
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.exceptions import RedisError

from core.errors import CrawlgraphError
from core.settings import Settings
from jobapi.auth import JWTAuthMiddleware, TokenCodec, UserCache, load_secret
from jobapi.controllers.auth import AuthController
from jobapi.controllers.graphs import GraphController
from jobapi.controllers.jobs import JobController
from jobapi.controllers.system import HealthController, ServiceController
from jobapi.controllers.users import UserController
from jobapi.errors import ApiError, field_from_message
from jobapi.ratelimit import RateLimiter, RateLimits
from jobapi.schemas import ErrorDetail, ErrorResponse
from jobapi.scrapyd import ScrapydClient
from jobapi.services import recovery
from jobapi.services.health import RequestMetrics
from jobapi.services.spiders import SpiderCatalog

ROUTE_HANDLERS: list[Any] = [
    HealthController, AuthController, JobController, UserController, ServiceController,
    GraphController,
]
MAX_BODY_BYTES = 4 * 1024 * 1024
POOL_MAX_SIZE = 16
REDIS_MAX_CONNECTIONS = 32

log = logging.getLogger("jobapi.app")
access_log = logging.getLogger("jobapi.access")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


# --- errors: the one handler ----------------------------------------------------------


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def handle_error(request: Request, exc: Exception) -> Response[ErrorResponse]:
    """Map every exception to the one JSON error shape; never a trace, SQL or secret."""
    headers: dict[str, str] = {}
    hint = field = None
    if isinstance(exc, ApiError):
        status, code, message, hint, field = (exc.status_code, exc.code, exc.message, exc.hint,
                                              exc.field)
        headers.update(exc.headers)
    elif isinstance(exc, CrawlgraphError) and exc.status_code < 500:
        status, code, message, hint = exc.status_code, _code(exc.status_code), exc.message, \
            exc.hint
    elif isinstance(exc, ValidationException):
        status, code, message, hint, field = _validation(exc)
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        status, code, message = exc.status_code, _code(exc.status_code), str(exc.detail)
        headers.update(exc.headers or {})
        if status == 413:
            message = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    elif isinstance(exc, psycopg.DataError):
        # A value PostgreSQL cannot take (a NUL character, a number out of range):
        # the request's fault, though a field's own check should have caught it.
        status, code = 422, "validation_error"
        message = "A value in the request cannot be stored or compared by the database."
        hint = "Remove control characters (such as NUL) and out-of-range numbers."
        log.warning("database refused a value: %s", type(exc).__name__)
    elif isinstance(exc, UnicodeDecodeError | RecursionError) and _decoding_body(exc):
        # Litestar's JSON decoding lets these through: the body's fault, not ours.
        status, code = 400, "bad_request"
        message = ("The request body is not valid UTF-8." if isinstance(exc, UnicodeDecodeError)
                   else "The request body is nested too deeply.")
        hint = "Send a UTF-8 JSON document of the documented shape."
    elif isinstance(exc, psycopg.OperationalError | PoolTimeout | RedisError):
        status, code = 503, "service_unavailable"
        message = "A database the API needs cannot be reached."
        hint = "Try again shortly; GET /health shows which service is down."
        log.error("service unavailable: %s", type(exc).__name__)
    else:
        status, code = 500, "internal_error"
        message = "An unexpected error occurred."
        hint = "Report it with the request id."
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc)
    rid = request.scope.get("state", {}).get("request_id") or request_id_var.get()
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, hint=hint, field=field,
                                           request_id=rid))
    return Response(body, status_code=status, headers=headers)


def _decoding_body(exc: BaseException) -> bool:
    """True if `exc` was raised while Litestar decoded the request body."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "decode_json" and \
                "litestar" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _validation(exc: ValidationException) -> tuple[int, str, str, str | None, str | None]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    first = extra[0] if extra and isinstance(extra[0], dict) else {}
    text = str(first.get("message") or "The request is not valid.")
    key = first.get("key")
    field = field_from_message(text) if key in (None, "data") else str(key)
    message = f"{field}: {text}" if field else text
    return 422, "validation_error", message, "Fix the field and send it again.", field


# --- request context: id, timing, one log line, metrics ---------------------------------


class RequestContext:
    """Takes or makes `X-Request-ID`, returns it, and logs one line per request."""

    def __init__(self, app: Any, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        try:
            problem = _query_problem(scope.get("query_string", b""))
            if problem is not None:
                await _send_bad_request(send_with_id, problem, rid)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            self.metrics.observe(scope["method"], route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status,
                                elapsed * 1000)
            request_id_var.reset(token)


def _query_problem(query: bytes) -> str | None:
    """What is wrong with a query string that no parameter may hold, or None.

    Litestar would decode invalid UTF-8 into replacement characters: a filter
    would then silently match nothing. (Each parameter refuses NUL itself.)
    """
    if not query:
        return None
    raw = unquote_to_bytes(query.replace(b"+", b" "))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "The query string is not valid UTF-8."
    return None


async def _send_bad_request(send: Any, message: str, rid: str) -> None:
    body = msgspec.json.encode(ErrorResponse(error=ErrorDetail(
        code="bad_request", message=message, request_id=rid,
        hint="Percent-encode parameters as UTF-8, without control characters.")))
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str) -> None:
    """One handler on the `jobapi` logger; every line carries the request id."""
    logger = logging.getLogger("jobapi")
    logger.setLevel(level)
    if any(getattr(h, "_crawlgraph", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._crawlgraph = True  # type: ignore[attr-defined]
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    logger.addHandler(handler)


# --- the app ------------------------------------------------------------------------------


async def _configure_connection(conn: psycopg.AsyncConnection) -> None:
    # jsonb columns (params, stats ...) decoded by msgspec: several times faster.
    set_json_loads(msgspec.json.decode, conn)


def _lifespan(settings: Settings):
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(settings.database_url, min_size=2, max_size=POOL_MAX_SIZE,
                                   open=False, name="jobapi", timeout=10.0,
                                   configure=_configure_connection,
                                   # One statement per round trip: no BEGIN/COMMIT around
                                   # reads; a service that needs a transaction opens one.
                                   kwargs={"autocommit": True})
        await pool.open(wait=True, timeout=15.0)
        redis_sync = redis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                          socket_connect_timeout=2)
        # A bounded pool: a burst of requests waits its turn for a connection (the
        # commands are short) instead of opening hundreds that time out connecting.
        redis_async = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=10,
            socket_timeout=5, socket_connect_timeout=2))
        scrapyd = ScrapydClient(settings.scrapyd_urls)
        app.state.update(pool=pool, redis_sync=redis_sync, redis_async=redis_async,
                         scrapyd=scrapyd, limiter=RateLimiter(redis_async))
        # The app's long-lived objects (routes, schemas, modules) need no cyclic
        # GC: moving them out of its reach shortens the collector's pauses.
        gc.collect()
        gc.freeze()
        # Jobs a stopped API left half-done: now, then every interval (jobapi.services.recovery).
        grace = app.state.get("recovery_grace_seconds")
        recovering = None if grace is None else asyncio.get_running_loop().create_task(
            recovery.run_recovery(pool, redis_sync, scrapyd, grace,
                                  app.state["recovery_interval_seconds"]))
        try:
            yield
        finally:
            if recovering is not None:
                recovering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovering
            await scrapyd.aclose()
            await redis_async.aclose()
            redis_sync.close()
            await pool.close()

    return lifespan


def _from_state(name: str) -> Provide:
    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


def create_app(
    settings: Settings,
    *,
    rate_limits: RateLimits | None = None,
    crawler_overrides: Mapping[str, str] | None = None,
    extra_route_handlers: Sequence[Any] = (),
    recovery_grace_seconds: float | None = None,
    recovery_interval_seconds: float = recovery.INTERVAL_SECONDS,
) -> Litestar:
    """Build the API for these settings.

    Args:
        settings: the one setting source.
        rate_limits: replaces the default limits (`RateLimits.unlimited()` for benchmarks).
        crawler_overrides: Scrapy settings passed to every scheduled crawler process
            (e.g. CRAWLGRAPH_DATABASE_URL when scrapyd nodes do not share the API's
            environment); never shown in API answers.
        extra_route_handlers: more controllers or handlers to serve.
        recovery_grace_seconds: recover jobs left half-done by a stopped API once they
            are this old (`jobapi.services.recovery`), at start and every
            `recovery_interval_seconds`; None (the default here) turns it off.
            `app_from_env`, which serves the API, turns it on.
    """
    configure_logging(settings.log_level)
    metrics = RequestMetrics()
    state = State({
        "settings": settings,
        "app_settings": settings,
        "tokens": TokenCodec(load_secret(settings), issuer=settings.jwt_issuer,
                             audience=settings.jwt_audience,
                             ttl_seconds=settings.token_ttl_seconds),
        "user_cache": UserCache(),
        "rate_limits": rate_limits or RateLimits(),
        "spider_catalog": SpiderCatalog(),
        "crawler_overrides": dict(crawler_overrides or {}),
        "request_metrics": metrics,
        "recovery_grace_seconds": recovery_grace_seconds,
        "recovery_interval_seconds": recovery_interval_seconds,
    })
    names = ["pool", "app_settings", "scrapyd", "redis_sync", "redis_async", "limiter",
             "rate_limits", "spider_catalog"]
    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, *extra_route_handlers],
        state=state,
        lifespan=[_lifespan(settings)],
        dependencies={name: _from_state(name) for name in names},
        middleware=[DefineMiddleware(JWTAuthMiddleware, exclude=["^/schema"])],
        exception_handlers={Exception: handle_error},
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins),
                               allow_headers=["Authorization", "Content-Type",
                                              "Idempotency-Key", "X-Request-ID"],
                               expose_headers=["X-Request-ID", "Retry-After"])
        if settings.cors_origins else None,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="crawlgraph job API",
            version="1",
            description="Submit, watch, cancel and read crawl jobs. Authenticate with "
                        "POST /api/v1/auth/token and send `Authorization: Bearer <token>`.",
            path="/schema",
            use_handler_docstrings=True,
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer",
                                              bearer_format="JWT"),
            }),
            security=[{"BearerToken": []}],
        ),
        logging_config=None,
    )
    app.asgi_handler = RequestContext(app.asgi_handler, metrics)
    return app


def app_from_env() -> Litestar:
    """Factory for uvicorn (`--factory jobapi.app:app_from_env`): settings from the environment."""
    return create_app(Settings.from_env(), recovery_grace_seconds=recovery.GRACE_SECONDS)

