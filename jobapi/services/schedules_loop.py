"""The scheduler process: `crawlgraph scheduler` runs `fire_due` every poll interval.

It opens what the API opens (a PostgreSQL pool, Redis, the scrapyd client,
the rate limiter) from the same settings, then passes over the due schedules
until it is stopped (SIGTERM or SIGINT ends it after the pass under way).
Any number of scheduler processes may run at once, on any machine that
reaches PostgreSQL, Redis and scrapyd: each slot fires once across all of
them (`jobapi.services.schedules_fire`). The local stack runs one
(`stack/commands.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

from core.settings import Settings
from jobapi.ratelimit import RateLimiter, RateLimits
from jobapi.scrapyd import ScrapydClient
from jobapi.services.loops import open_pool, pause, stopped_by_signals
from jobapi.services.schedules_fire import FireContext, fire_due
from jobapi.services.spiders import SpiderCatalog

log = logging.getLogger("jobapi.scheduler")

POLL_SECONDS = 1.0
GRACE_SECONDS = 60.0


async def run_scheduler(settings: Settings, *, poll_seconds: float = POLL_SECONDS,
                        grace_seconds: float = GRACE_SECONDS,
                        crawler_overrides: Mapping[str, str] | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """Fire due slots every `poll_seconds` until `stop` is set (or a signal arrives).

    A slot is on time up to `grace_seconds` late; later than that it is a
    missed slot, fired or not by the schedule's catch-up policy.
    """
    stop = stop or asyncio.Event()
    with stopped_by_signals(stop):
        pool = await open_pool(settings, name="scheduler", max_size=8)
        redis_client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5,
                                               socket_connect_timeout=2)
        scrapyd = ScrapydClient(settings.scrapyd_urls)
        ctx = FireContext(pool=pool, redis_client=redis_client, scrapyd=scrapyd,
                          limiter=RateLimiter(redis_client), rate_limits=RateLimits(),
                          spider_catalog=SpiderCatalog(),
                          allow_private_networks=settings.allow_private_networks,
                          crawler_overrides=dict(crawler_overrides or {}),
                          grace=timedelta(seconds=grace_seconds))
        await ctx.spider_catalog.names()  # loads the spiders now, not at the first fire
        log.info("scheduler started (every %gs, grace %gs)", poll_seconds, grace_seconds)
        try:
            while not stop.is_set():
                try:
                    await fire_due(ctx)
                except (psycopg.OperationalError, PoolTimeout, RedisError) as exc:
                    log.warning("scheduler: a service is unavailable (%s); retrying",
                                type(exc).__name__)
                await pause(stop, poll_seconds)
        finally:
            await scrapyd.aclose()
            await redis_client.aclose()
            await pool.close()
            log.info("scheduler stopped")
