"""Health of the services the API depends on (`GET /health`) and `/metrics` text.

Each check is bounded by a short timeout and reports ok, its latency and, when
it failed, the kind of error (never a URL, which may carry a password).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from jobapi.schemas import Check, Health
from jobapi.scrapyd import ScrapydClient

CHECK_TIMEOUT = 2.0


async def _timed(probe: Callable[[], Awaitable[Any]]) -> Check:
    started = time.perf_counter()
    detail = None
    ok = False
    with anyio.move_on_after(CHECK_TIMEOUT) as scope:
        try:
            await probe()
            ok = True
        except Exception as exc:  # any failure of a probe is a failed check, not a 500
            detail = getattr(exc, "message", None) or type(exc).__name__
    if scope.cancelled_caught:
        detail = f"no answer within {CHECK_TIMEOUT:g} s"
    return Check(ok=ok, latency_ms=round((time.perf_counter() - started) * 1000, 2),
                 detail=detail)


async def check_all(
    pool: AsyncConnectionPool, redis_client: aioredis.Redis, scrapyd: ScrapydClient,
) -> Health:
    async def postgres() -> None:
        async with pool.connection(timeout=CHECK_TIMEOUT) as conn:
            await conn.execute("SELECT 1")

    probes: dict[str, Callable[[], Awaitable[Any]]] = {
        "postgres": postgres, "redis": redis_client.ping,
    }
    for node in scrapyd.nodes:
        probes[f"scrapyd[{node.index}]"] = (lambda n=node: scrapyd.daemon_status(n))
    checks: dict[str, Check] = {}

    async def run(name: str, probe: Callable[[], Awaitable[Any]]) -> None:
        checks[name] = await _timed(probe)

    async with anyio.create_task_group() as tg:
        for name, probe in probes.items():
            tg.start_soon(run, name, probe)
    ordered = {name: checks[name] for name in probes}
    status = "ok" if all(c.ok for c in ordered.values()) else "degraded"
    return Health(status=status, checks=ordered)


class RequestMetrics:
    """Per-route request counters and latency sums of this process."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.seconds[(method, route)] = self.seconds.get((method, route), 0.0) + seconds


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(
    metrics: RequestMetrics, jobs: dict[str, int], health: Health | None,
) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines = [
        "# HELP crawlgraph_jobs Jobs by status.",
        "# TYPE crawlgraph_jobs gauge",
    ]
    for status in ("pending", "running", "paused", "finished", "failed", "cancelled"):
        lines.append(f'crawlgraph_jobs{{status="{status}"}} {jobs.get(status, 0)}')
    lines += [
        "# HELP crawlgraph_api_requests_total API requests answered by this process.",
        "# TYPE crawlgraph_api_requests_total counter",
    ]
    for (method, route, status), n in sorted(metrics.counts.items()):
        lines.append(
            f'crawlgraph_api_requests_total{{method="{method}",route="{_label(route)}",'
            f'status="{status}"}} {n}'
        )
    lines += [
        "# HELP crawlgraph_api_request_seconds_sum Time spent answering, by route.",
        "# TYPE crawlgraph_api_request_seconds_sum counter",
    ]
    for (method, route), seconds in sorted(metrics.seconds.items()):
        lines.append(
            f'crawlgraph_api_request_seconds_sum{{method="{method}",route="{_label(route)}"}} '
            f"{seconds:.6f}"
        )
    if health is not None:
        lines += [
            "# HELP crawlgraph_service_up Whether a service the API depends on answers.",
            "# TYPE crawlgraph_service_up gauge",
        ]
        for name, check in health.checks.items():
            lines.append(f'crawlgraph_service_up{{service="{_label(name)}"}} {int(check.ok)}')
    return "\n".join(lines) + "\n"
