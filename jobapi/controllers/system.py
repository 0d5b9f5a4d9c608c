"""`GET /health`, `GET /api/v1/spiders` and `GET /metrics`."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.controllers import Catalog, Pool, RedisAsync, Scrapyd, errors
from jobapi.schemas import Health, SpiderList
from jobapi.scrapyd import ScrapydClient
from jobapi.services import health as health_service
from jobapi.services import jobs as jobs_service


async def _health(pool: AsyncConnectionPool, redis_async: aioredis.Redis,
                  scrapyd: ScrapydClient, *, strict: bool) -> Response[Health]:
    result = await health_service.check_all(pool, redis_async, scrapyd)
    degraded = strict and result.status != "ok"
    return Response(result, status_code=503 if degraded else 200)


_HEALTH_RESPONSES = {503: ResponseSpec(data_container=Health, generate_examples=False,
                                       description="At least one service does not answer.")}


class HealthController(Controller):
    """Unauthenticated: load balancers and the local stack probe these."""

    path = "/"
    tags = ["service"]
    opt = {"exclude_from_auth": True}

    @get("/health", operation_id="health")
    async def health(self, pool: Pool, redis_async: RedisAsync, scrapyd: Scrapyd) -> Health:
        """Liveness: 200 while the API answers; the body checks PostgreSQL, Redis and each
        scrapyd node (ok, latency, what failed) and says `ok` or `degraded`."""
        return await _health(pool, redis_async, scrapyd, strict=False)  # type: ignore[return-value]

    @get("/api/v1/health", operation_id="readiness", responses=_HEALTH_RESPONSES)
    async def health_v1(self, pool: Pool, redis_async: RedisAsync, scrapyd: Scrapyd) -> Health:
        """Readiness: the same checks, and 503 (same body) when a service does not answer."""
        return await _health(pool, redis_async, scrapyd, strict=True)  # type: ignore[return-value]


class ServiceController(Controller):
    path = "/"
    tags = ["service"]

    @get("/api/v1/spiders", operation_id="listSpiders", responses=errors(503))
    async def spiders(self, spider_catalog: Catalog) -> SpiderList:
        """The spiders a job can run, with the arguments each takes."""
        return SpiderList(items=await spider_catalog.spiders())

    @get("/metrics", operation_id="metrics", media_type="text/plain; version=0.0.4",
         responses=errors())
    async def metrics(self, request: Request[CurrentUser, Any, Any],
                      pool: Pool, redis_async: RedisAsync,
                      scrapyd: Scrapyd) -> str:
        """Prometheus metrics: jobs by status, requests per route, the services' health."""
        state = request.app.state
        counts = await jobs_service.count_by_status(pool)
        health = await health_service.check_all(pool, redis_async, scrapyd)
        return health_service.render_metrics(state.request_metrics, counts, health)
