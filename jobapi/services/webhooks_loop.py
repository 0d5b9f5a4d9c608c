"""The webhook sender process: `crawlgraph webhook deliver` sends due deliveries until stopped.

A process of its own (the local stack runs one, `stack/commands.py`) rather
than a task of the scheduler: a slow receiver never delays a schedule's slot,
and either can be restarted alone. It needs only PostgreSQL. Any number may
run at once: each holds the row of the delivery it is sending, so no two send
the same one at the same time (`webhooks_send.deliver_one`). SIGTERM or SIGINT
ends it after the deliveries under way.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import PoolTimeout

from core.settings import Settings
from jobapi.services.loops import open_pool, pause, stopped_by_signals
from jobapi.services.webhooks_send import RETRY_BASE, deliver_one

log = logging.getLogger("jobapi.webhooks")

POLL_SECONDS = 1.0
CONCURRENCY = 4


async def run_sender(settings: Settings, *, poll_seconds: float = POLL_SECONDS,
                     retry_base: float = RETRY_BASE, concurrency: int = CONCURRENCY,
                     stop: asyncio.Event | None = None) -> None:
    """Send due deliveries, `concurrency` at a time, until `stop` is set (or a signal)."""
    stop = stop or asyncio.Event()
    with stopped_by_signals(stop):
        pool = await open_pool(settings, name="webhooks", max_size=concurrency)

        async def worker() -> None:
            while not stop.is_set():
                try:
                    if await deliver_one(
                            pool, allow_private_networks=settings.allow_private_networks,
                            retry_base=retry_base):
                        continue
                except (psycopg.OperationalError, PoolTimeout) as exc:
                    log.warning("webhooks: PostgreSQL is unavailable (%s); retrying",
                                type(exc).__name__)
                await pause(stop, poll_seconds)

        log.info("webhook sender started (%d at a time, every %gs)", concurrency, poll_seconds)
        try:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(concurrency):
                    tasks.create_task(worker())
        finally:
            await pool.close()
            log.info("webhook sender stopped")
