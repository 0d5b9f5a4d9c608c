"""Rate limits kept in Redis, shared by every API process.

A fixed window per (limit, subject): `INCR` a key named after the window and
let it expire with the window. Over the limit is a 429 with `Retry-After`
(seconds to the end of the window). The limits are `RateLimits` fields;
`create_app(settings, rate_limits=...)` replaces the defaults (the benchmark
turns them off with `RateLimits.unlimited()`).
"""

from __future__ import annotations

import hashlib
import time

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobapi.errors import ServiceUnavailable, TooManyRequests


class Limit(msgspec.Struct, frozen=True):
    count: int
    seconds: int


class RateLimits(msgspec.Struct, kw_only=True, frozen=True):
    """How many attempts each subject gets per window; None turns a limit off."""

    login_per_username: Limit | None = Limit(10, 300)
    login_per_address: Limit | None = Limit(50, 300)
    jobs_per_user: Limit | None = Limit(30, 60)

    @classmethod
    def unlimited(cls) -> RateLimits:
        return cls(login_per_username=None, login_per_address=None, jobs_per_user=None)


class RateLimiter:
    """Counts attempts in Redis and raises TooManyRequests past a limit."""

    def __init__(self, client: aioredis.Redis, prefix: str = "crawlgraph:ratelimit") -> None:
        self.client = client
        self.prefix = prefix

    async def hit(self, name: str, subject: str, limit: Limit | None, *, what: str) -> None:
        """Count one attempt of `subject` against `limit`."""
        if limit is None:
            return
        now = time.time()
        window = int(now // limit.seconds)
        # Hash the subject: usernames and addresses stay out of Redis keys.
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        key = f"{self.prefix}:{name}:{digest}:{window}"
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, limit.seconds + 1)
                count, _ = await pipe.execute()
        except RedisError as exc:
            raise ServiceUnavailable(
                "The rate limiter cannot reach Redis.", hint="Try again shortly."
            ) from exc
        if count > limit.count:
            retry_after = int((window + 1) * limit.seconds - now) + 1
            raise TooManyRequests(
                f"Too many {what}: at most {limit.count} per {limit.seconds} seconds.",
                retry_after=retry_after,
                hint=f"Try again in {retry_after} seconds.",
            )
