"""Per-host politeness shared by every worker of a job: delay, concurrency, backoff.

Before each download the middleware reserves a start time for the request's
host (`host:port`): not before the host's previous reservation plus its
interval, nor before a `Retry-After` pause, and only while fewer than
`CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY` requests to it are in flight. The
interval is the largest of `CRAWLGRAPH_THROTTLE_MIN_DELAY`, the host's
robots.txt `Crawl-delay` and an AutoThrottle-like delay adapted to the
server's latency (`latency / CRAWLGRAPH_THROTTLE_TARGET_CONCURRENCY`,
smoothed, capped by `CRAWLGRAPH_THROTTLE_MAX_DELAY`). A `429` or `503` pauses
the host for its `Retry-After` (seconds or an HTTP date, capped by
`CRAWLGRAPH_THROTTLE_MAX_PAUSE`), or, without one, for an exponential backoff
with jitter.

The state lives in Redis under the job's keys (`crawlgraph:<job>:throttle:*`),
updated atomically by Lua scripts using Redis's clock, so four workers on one
job are together as polite as one. Without a job id or a Redis URL (a quick
local `scrapy crawl`, unit tests) the same state is kept in the process.

On by default; `CRAWLGRAPH_THROTTLE_ENABLED = False` turns it off. It
replaces Scrapy's per-slot `DOWNLOAD_DELAY` and AutoThrottle (keep those off).
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import os
import random
import time
import uuid
from typing import Any, Protocol, Self

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response

from crawler.urls import host_key

logger = logging.getLogger(__name__)

META_KEY = "crawlgraph_throttle"

# KEYS: state hash, in-flight zset. ARGV: min_delay, max_concurrency, token, lease seconds.
# Returns the seconds to wait before starting (as a string: Lua numbers become
# integers in replies), or "-1" when the host is at its concurrency limit.
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local maxc = tonumber(ARGV[2])
if maxc > 0 and redis.call('ZCARD', KEYS[2]) >= maxc then return '-1' end
local h = redis.call('HMGET', KEYS[1], 'next', 'delay', 'crawl_delay', 'paused_until')
local interval = math.max(tonumber(ARGV[1]), tonumber(h[2] or 0), tonumber(h[3] or 0))
local start = math.max(now, tonumber(h[1] or 0), tonumber(h[4] or 0))
redis.call('HSET', KEYS[1], 'next', tostring(start + interval))
redis.call('ZADD', KEYS[2], start + tonumber(ARGV[4]), ARGV[3])
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('EXPIRE', KEYS[2], 86400)
return tostring(start - now)
"""

# KEYS: state hash, in-flight zset. ARGV: latency, target concurrency, min, max, ok (1/0),
# the token to release ('' for none): one round trip per response.
ADAPT_LUA = """
if ARGV[6] ~= '' then redis.call('ZREM', KEYS[2], ARGV[6]) end
local old = tonumber(redis.call('HGET', KEYS[1], 'delay') or ARGV[3])
local target = tonumber(ARGV[1]) / tonumber(ARGV[2])
local new = math.max(target, (old + target) / 2)
new = math.min(math.max(new, tonumber(ARGV[3])), tonumber(ARGV[4]))
if ARGV[5] == '0' and new < old then return tostring(old) end
redis.call('HSET', KEYS[1], 'delay', tostring(new))
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'strikes', 0) end
return tostring(new)
"""

# KEYS: state hash, in-flight zset. ARGV: pause seconds (or -1 for exponential), base,
# cap, the token to release ('' for none). Returns the pause applied.
PAUSE_LUA = """
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause = tonumber(ARGV[1])
local strikes = redis.call('HINCRBY', KEYS[1], 'strikes', 1)
if pause < 0 then
  pause = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (strikes - 1))
end
local untl = now + pause
local old = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or 0)
if untl > old then redis.call('HSET', KEYS[1], 'paused_until', tostring(untl)) end
return tostring(pause)
"""


class ThrottleState(Protocol):
    async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                      lease: float) -> float: ...
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


class RedisThrottleState:
    """The throttle state of a job, in Redis, shared by all its workers."""

    def __init__(self, redis_url: str, job_id: str) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(redis_url)
        self.prefix = f"crawlgraph:{job_id}:throttle:"
        self._acquire = self.client.register_script(ACQUIRE_LUA)
        self._adapt = self.client.register_script(ADAPT_LUA)
        self._pause = self.client.register_script(PAUSE_LUA)

    def _keys(self, host: str) -> tuple[str, str]:
        return self.prefix + host, self.prefix + "inflight:" + host

    async def _call(self, call: Any, *, forever: bool) -> Any:
        """Run one Redis call; while Redis is unreachable, wait and retry.

        A reservation (`forever`) is retried until Redis answers: the request
        waits, it is never sent unthrottled nor failed. Bookkeeping calls give
        up after about a minute: a lost release only lets its reservation
        expire with its lease.
        """
        import redis

        delay, waited = 0.1, 0.0
        while True:
            try:
                return await call()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                if not forever and waited > 60:
                    logger.warning("throttle: giving up a Redis update after %.0fs: %s",
                                   waited, exc)
                    return None
                logger.warning("throttle: Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    async def acquire(self, host: str, min_delay: float, max_concurrency: int, token: str,
                      lease: float) -> float:
        keys = self._keys(host)
        return float(await self._call(
            lambda: self._acquire(keys=keys, args=[min_delay, max_concurrency, token, lease]),
            forever=True))

    async def release(self, host: str, token: str) -> None:
        await self._call(lambda: self.client.zrem(self._keys(host)[1], token), forever=False)

    async def adapt(self, host: str, latency: float, target: float, lo: float, hi: float,
                    ok: bool, release: str = "") -> float:
        result = await self._call(
            lambda: self._adapt(keys=self._keys(host),
                                args=[latency, target, lo, hi, int(ok), release]),
            forever=False)
        return float(result) if result is not None else lo

    async def pause(self, host: str, seconds: float | None, base: float, cap: float,
                    release: str = "") -> float:
        result = await self._call(
            lambda: self._pause(keys=self._keys(host),
                                args=[-1 if seconds is None else seconds, base, cap, release]),
            forever=True)
        return float(result)

    async def set_field(self, host: str, name: str, value: float) -> None:
        await self._call(lambda: self.client.hset(self._keys(host)[0], name, str(value)),
                         forever=True)

    async def get(self, host: str) -> dict[str, float]:
        raw = await self._call(lambda: self.client.hgetall(self._keys(host)[0]), forever=True)
        return {k.decode(): float(v) for k, v in raw.items()}

    async def close(self) -> None:
        await self.client.aclose()


def parse_retry_after(value: bytes | str | None, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), cap)


class ThrottleMiddleware:
    """Downloader middleware applying the shared per-host politeness state."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.min_delay = s.getfloat("CRAWLGRAPH_THROTTLE_MIN_DELAY", 0.0)
        self.max_delay = s.getfloat("CRAWLGRAPH_THROTTLE_MAX_DELAY", 60.0)
        self.max_concurrency = s.getint("CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY", 8)
        self.target = s.getfloat("CRAWLGRAPH_THROTTLE_TARGET_CONCURRENCY", 4.0)
        self.adaptive = s.getbool("CRAWLGRAPH_THROTTLE_ADAPTIVE", True)
        self.max_pause = s.getfloat("CRAWLGRAPH_THROTTLE_MAX_PAUSE", 300.0)
        self.backoff_base = s.getfloat("CRAWLGRAPH_THROTTLE_BACKOFF_BASE", 1.0)
        self.pause_statuses = {int(x) for x in s.getlist("CRAWLGRAPH_THROTTLE_PAUSE_STATUSES",
                                                         [429, 503])}
        # Start times are spaced exactly; a request's arrival at the server varies
        # by a few milliseconds (connection set-up), so a Crawl-delay gets a margin.
        self.slack = s.getfloat("CRAWLGRAPH_THROTTLE_SLACK", 0.05)
        self.lease = s.getfloat("DOWNLOAD_TIMEOUT", 180) + 30
        self.shared = s.getbool("CRAWLGRAPH_THROTTLE_SHARED", True)
        self.redis_url = s.get("CRAWLGRAPH_REDIS_URL") or os.environ.get("REDIS_URL")
        self.state: ThrottleState = LocalThrottleState()
        self._worker = uuid.uuid4().hex[:12]
        self._counter = itertools.count()
        self._released: dict[str, asyncio.Event] = {}
        crawler.signals.connect(self.spider_opened, signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("CRAWLGRAPH_THROTTLE_ENABLED", True):
            raise NotConfigured("throttling is off")
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        job_id = getattr(spider, "job_id", None)
        if self.shared and job_id and self.redis_url:
            self.state = RedisThrottleState(self.redis_url, str(job_id))
            logger.info("throttle state shared through Redis for job %s", job_id)

    async def spider_closed(self, spider: Any) -> None:
        await self.state.close()

    # -- hooks for other components -------------------------------------------------
    async def set_crawl_delay(self, url: str, seconds: float) -> None:
        """A host's minimum delay from robots.txt (`Crawl-delay`)."""
        await self.state.set_field(host_key(url), "crawl_delay",
                                   min(seconds, self.max_delay) + self.slack)

    async def slow_down(self, url: str, factor: float = 2.0, floor: float = 1.0) -> float:
        """Multiply a host's delay (a block was detected); returns the new delay."""
        key = host_key(url)
        current = (await self.state.get(key)).get("delay", 0.0)
        new = min(max(current * factor, floor), self.max_delay)
        await self.state.set_field(key, "delay", new)
        self.crawler.stats.inc_value("throttle/slowed_down")
        return new

    # -- downloader middleware hooks ------------------------------------------------
    async def process_request(self, request: Request) -> None:
        if META_KEY in request.meta:  # already holds a reservation (should not happen)
            return
        host = host_key(request.url)
        token = f"{self._worker}:{next(self._counter)}"
        while True:
            wait = await self.state.acquire(host, self.min_delay, self.max_concurrency, token,
                                            self.lease)
            if wait >= 0:
                break
            # At the host's concurrency limit: try again as soon as this worker
            # releases one of its requests to the host, or after a short poll
            # (the request in flight may be another worker's).
            released = self._released.setdefault(host, asyncio.Event())
            try:
                await asyncio.wait_for(released.wait(), 0.05 + random.random() * 0.05)
            except TimeoutError:
                pass
        if wait > 0:
            self.crawler.stats.inc_value("throttle/delayed")
            await asyncio.sleep(wait)
        request.meta[META_KEY] = (host, token)

    def _notify(self, host: str) -> None:
        event = self._released.pop(host, None)
        if event is not None:
            event.set()

    async def process_response(self, request: Request, response: Response) -> Response:
        held = request.meta.pop(META_KEY, None)
        if held is None:
            return response
        host, token = held
        # Releasing the reservation and updating the host's state is one round trip.
        if response.status in self.pause_statuses:
            # Without Retry-After (None), the state applies exponential backoff with jitter.
            seconds = parse_retry_after(response.headers.get(b"Retry-After"), self.max_pause)
            paused = await self.state.pause(host, seconds, self.backoff_base * (
                1 + random.random() * 0.25), self.max_pause, release=token)
            self.crawler.stats.inc_value(f"throttle/paused/{response.status}")
            logger.info("pausing %s for %.1fs after %s", host, paused, response.status)
        elif self.adaptive and "download_latency" in request.meta:
            await self.state.adapt(host, float(request.meta["download_latency"]), self.target,
                                   self.min_delay, self.max_delay, response.status == 200,
                                   release=token)
        else:
            await self.state.release(host, token)
        self._notify(host)
        return response

    async def process_exception(self, request: Request, exception: Exception) -> None:
        held = request.meta.pop(META_KEY, None)
        if held is not None:
            await self.state.release(*held)
            self._notify(held[0])
