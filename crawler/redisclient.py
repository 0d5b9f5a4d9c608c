"""The crawler's Redis clients: a bounded pool whose callers wait for a free connection.

redis-py's asyncio pool holds at most 100 connections and, past that, fails
the call (`MaxConnectionsError`). In a crawler every request in the download
slots may be in a Redis call at once (the frontier's lease and deferral, the
robots.txt outage state, the shared throttle, scope and trap counters), so a
worker with `CONCURRENT_REQUESTS` near 100 would lose a page to a full pool.
Every crawler component gets its client from `client_for`: a
`BlockingConnectionPool` of `max_connections` whose extra callers wait for a
connection to come back (each call is still bounded by the socket timeouts).
"""

from __future__ import annotations

import redis.asyncio as aioredis

#: Connections of one component's pool in one worker; more calls at once wait.
MAX_CONNECTIONS = 32


def client_for(redis_url: str, *, max_connections: int = MAX_CONNECTIONS,
               socket_timeout: float | None = 10.0) -> aioredis.Redis:
    """An asyncio Redis client whose calls wait for a free connection, never fail for one."""
    pool = aioredis.BlockingConnectionPool.from_url(
        redis_url, max_connections=max_connections, timeout=None,
        socket_timeout=socket_timeout, socket_connect_timeout=5)
    return aioredis.Redis.from_pool(pool)
