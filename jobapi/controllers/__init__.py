"""The API's route handlers, one controller per resource.

Handlers stay thin: they read the request, check the role, and delegate to
`jobapi.services`. Dependencies provided by the app to every handler:
`pool` (psycopg AsyncConnectionPool), `app_settings`, `scrapyd` (ScrapydClient),
`redis_async` (redis.asyncio.Redis: the frontier, the rate limiter, health),
`limiter` (RateLimiter), `spider_catalog`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import redis.asyncio as aioredis
from litestar import Request
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings
from jobapi.ratelimit import RateLimiter, RateLimits
from jobapi.schemas import ErrorResponse
from jobapi.scrapyd import ScrapydClient
from jobapi.services.spiders import SpiderCatalog

_DESCRIPTIONS = {
    400: "The request cannot be read (malformed body, bad cursor, a password over 72 bytes).",
    401: "No valid access token, or wrong credentials.",
    403: "The role does not allow this.",
    404: "No such resource, or one that belongs to another user.",
    409: "Conflicts with the resource's state.",
    413: "The request body is too large.",
    422: "A field has a value that cannot work; `error.field` names it.",
    429: "Rate limited; `Retry-After` says when to try again.",
    502: "scrapyd answered with an error; the job is marked failed with the reason.",
    503: "A service the API needs (scrapyd, PostgreSQL, Redis) cannot be reached.",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for these error statuses, all in the one error shape."""
    wanted = {400, 401, 422, *codes}
    return {
        code: ResponseSpec(data_container=ErrorResponse, description=_DESCRIPTIONS[code],
                           generate_examples=False)
        for code in sorted(wanted)
    }


def client_address(request: Request, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the peer, or the X-Forwarded-For hop before a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return hop
    return peer


def _trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


# The app's named dependencies, typed (Litestar wants them marked explicitly).
Pool = NamedDependency[AsyncConnectionPool]
AppSettings = NamedDependency[Settings]
Scrapyd = NamedDependency[ScrapydClient]
RedisAsync = NamedDependency[aioredis.Redis]
Limiter = NamedDependency[RateLimiter]
Limits = NamedDependency[RateLimits]
Catalog = NamedDependency[SpiderCatalog]

# The query parameters of a keyset-paged listing (`jobapi.services.listings`).
Cursor = Annotated[str | None, QueryParameter(max_length=4096, pattern=r"^[A-Za-z0-9_-]*$",
                                              description="`next_cursor` of the previous page.")]
RowsPerPage = Annotated[int, QueryParameter(ge=1, le=500, description="Rows per page.")]
