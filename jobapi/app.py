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
  `redis_async`, `limiter`, `rate_limits`, `spider_catalog`.
- Raise `jobapi.errors` classes (NotFound, Conflict, Unprocessable(field=...),
  ...): the one exception handler here turns every error into the one JSON shape
  `{"error": {"code", "message", "hint", "field", "request_id"}}`; document them
  with `responses=jobapi.controllers.errors(404, ...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from core.settings import Settings
from jobapi.auth import JWTAuthMiddleware, TokenCodec, UserCache, load_secret
from jobapi.controllers.auth import AuthController
from jobapi.controllers.console import ConsoleController
from jobapi.controllers.drawing import DrawingController
from jobapi.controllers.graphs import GraphController
from jobapi.controllers.jobs import JobController
from jobapi.controllers.schedules import ScheduleController
from jobapi.controllers.system import HealthController, ServiceController
from jobapi.controllers.users import UserController
from jobapi.controllers.warcs import WarcController
from jobapi.controllers.webhooks import WebhookController
from jobapi.errorhandler import MAX_BODY_BYTES, handle_error
from jobapi.ratelimit import RateLimiter, RateLimits
from jobapi.requestcontext import RequestContext, configure_logging
from jobapi.scrapyd import ScrapydClient
from jobapi.services import recovery
from jobapi.services.health import RequestMetrics
from jobapi.services.loops import QueuedPool, configure_connection
from jobapi.services.spiders import SpiderCatalog

ROUTE_HANDLERS: list[Any] = [
    HealthController, AuthController, JobController, UserController, ServiceController,
    GraphController, DrawingController, ConsoleController, ScheduleController, WarcController,
    WebhookController,
]
POOL_MAX_SIZE = 16
REDIS_MAX_CONNECTIONS = 32

log = logging.getLogger("jobapi.app")


# --- the app ------------------------------------------------------------------------------


def _lifespan(settings: Settings):
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = QueuedPool(settings.database_url, min_size=2, max_size=POOL_MAX_SIZE,
                                   open=False, name="jobapi", timeout=10.0,
                                   configure=configure_connection,
                                   # One statement per round trip: no BEGIN/COMMIT around
                                   # reads; a service that needs a transaction opens one.
                                   kwargs={"autocommit": True})
        await pool.open(wait=True, timeout=15.0)
        # A bounded pool: a burst of requests waits its turn for a connection (the
        # commands are short) instead of opening hundreds that time out connecting.
        redis_async = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=10,
            socket_timeout=5, socket_connect_timeout=2))
        scrapyd = ScrapydClient(settings.scrapyd_urls)
        app.state.update(pool=pool, redis_async=redis_async,
                         scrapyd=scrapyd, limiter=RateLimiter(redis_async))
        # The app's long-lived objects (routes, schemas, modules) need no cyclic
        # GC: moving them out of its reach shortens the collector's pauses.
        gc.collect()
        gc.freeze()
        # Jobs a stopped API left half-done: now, then every interval (jobapi.services.recovery).
        grace = app.state.get("recovery_grace_seconds")
        recovering = None if grace is None else asyncio.get_running_loop().create_task(
            recovery.run_recovery(pool, redis_async, scrapyd, grace,
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
    names = ["pool", "app_settings", "scrapyd", "redis_async", "limiter",
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

