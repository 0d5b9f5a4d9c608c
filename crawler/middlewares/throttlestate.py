"""The throttle's per-host state: the interface, and the state of one process.

`ThrottleState` is what `crawler.middlewares.throttle.ThrottleMiddleware`
asks of a backend: reserve a start time for a request to a host (or, when the
host is not due soon, say when to come back, `acquire_or_defer`), release the
reservation, adapt the host's delay to a response's latency, pause the host
after a 429/503, and read or set single fields. `LocalThrottleState` keeps it
in the process (no job or no Redis); `crawler.middlewares.throttleredis`
shares it between the workers of a job.
"""

from __future__ import annotations

import time
from typing import Protocol


class ThrottleState(Protocol):
    """A backend of the per-host state (`acquire` returns -1 at the concurrency limit)."""

    async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                      lease: float) -> float: ...
    async def acquire_or_defer(self, host: str, min_delay: float, max_concurrency: int,
                               token: str, lease: float, defer_after: float
                               ) -> tuple[str, float]: ...
    async def release(self, host: str, token: str) -> None: ...
    async def adapt(self, host: str, latency: float, target: float, lo: float, hi: float,
                    ok: bool, release: str = "") -> float: ...
    async def pause(self, host: str, seconds: float | None, base: float, cap: float,
                    release: str = "") -> float: ...
    async def set_field(self, host: str, name: str, value: float) -> None: ...
    async def get(self, host: str) -> dict[str, float]: ...
    async def close(self) -> None: ...


class LocalThrottleState:
    """The throttle state of one process (no job or no Redis)."""

    def __init__(self) -> None:
        self._hosts: dict[str, dict[str, float]] = {}
        self._inflight: dict[str, dict[str, float]] = {}

    def _h(self, host: str) -> dict[str, float]:
        return self._hosts.setdefault(host, {})

    async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                      lease: float) -> float:
        now = time.time()
        inflight = self._inflight.setdefault(host, {})
        for tok, expiry in list(inflight.items()):
            if expiry <= now:
                del inflight[tok]
        if max_concurrency > 0 and len(inflight) >= max_concurrency:
            return -1.0
        h = self._h(host)
        interval = max(min_delay, h.get("delay", 0.0), h.get("crawl_delay", 0.0))
        start = max(now, h.get("next", 0.0), h.get("paused_until", 0.0))
        h["next"] = start + interval
        inflight[token] = start + lease
        return start - now

    async def acquire_or_defer(self, host: str, min_delay: float, max_concurrency: int,
                               token: str, lease: float, defer_after: float
                               ) -> tuple[str, float]:
        """`('ok', wait)` reserved; `('busy', 0)` at the limit; `('defer', seconds)` not due.

        A host not due for longer than `defer_after` reserves nothing: the
        request comes back in `seconds`, each deferred request of the host one
        interval after the one deferred before it (`deferred_until`).
        """
        now = time.time()
        h = self._h(host)
        interval = max(min_delay, h.get("delay", 0.0), h.get("crawl_delay", 0.0))
        start = max(now, h.get("next", 0.0), h.get("paused_until", 0.0))
        if start - now > defer_after:
            later = max(start, h.get("deferred_until", 0.0) + interval)
            h["deferred_until"] = later
            return "defer", later - now
        wait = await self.acquire(host, min_delay, max_concurrency, token, lease)
        return ("ok", wait) if wait >= 0 else ("busy", 0.0)

    async def release(self, host: str, token: str) -> None:
        self._inflight.get(host, {}).pop(token, None)

    async def adapt(self, host: str, latency: float, target: float, lo: float, hi: float,
                    ok: bool, release: str = "") -> float:
        if release:
            await self.release(host, release)
        h = self._h(host)
        old = h.get("delay", lo)
        goal = latency / target
        new = min(max(max(goal, (old + goal) / 2), lo), hi)
        if not ok and new < old:
            return old
        h["delay"] = new
        if ok:
            h["strikes"] = 0
        return new

    async def pause(self, host: str, seconds: float | None, base: float, cap: float,
                    release: str = "") -> float:
        if release:
            await self.release(host, release)
        h = self._h(host)
        h["strikes"] = h.get("strikes", 0) + 1
        if seconds is None:
            seconds = min(cap, base * 2 ** (h["strikes"] - 1))
        h["paused_until"] = max(h.get("paused_until", 0.0), time.time() + seconds)
        return seconds

    async def set_field(self, host: str, name: str, value: float) -> None:
        self._h(host)[name] = value

    async def get(self, host: str) -> dict[str, float]:
        return dict(self._h(host))

    async def close(self) -> None:
        pass
