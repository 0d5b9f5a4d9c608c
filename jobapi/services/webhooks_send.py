"""Sending webhook deliveries: claim a due one, POST it signed, log the answer, retry later.

A delivery is a row of the `webhook_deliveries` outbox (added by a trigger when
a job or build ends, migration 0015). `deliver_one` takes the oldest due row
no other sender holds (`FOR UPDATE SKIP LOCKED`) and keeps its transaction
open while it calls the URL, so a sender killed mid-call leaves the row
pending and the next sender sends it: delivery is at least once, and the
body's `id` lets a receiver drop a repeat.

The body is JSON, `{"id", "type", "created_at", "data"}`, signed Stripe-style:
`Crawlgraph-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
with the webhook's secret (`sign`; docs/api.md has the receiver's check).

Every delivery resolves the URL's host again and refuses it if any address is
not public (unless private networks are allowed), then connects to the address
it checked (no second lookup, so DNS rebinding cannot swap it), with TLS
checked against the host name. No redirect is followed, timeouts are short, and
at most `BODY_EXCERPT` bytes of the answer are read. A 2xx is delivered;
anything else is retried after an exponential backoff with jitter
(`retry_delay`) until a day after the event, then the delivery is `failed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from psycopg_pool import AsyncConnectionPool

from jobapi.services.urlguard import IPAddress, classify, parse_host, resolve
from jobapi.services.webhooks import split_url
from jobapi.sql import QUERIES

log = logging.getLogger("jobapi.webhooks")

SIGNATURE_HEADER = "Crawlgraph-Signature"
BODY_EXCERPT = 1000
MAX_ADDRESSES = 3
CONNECT_TIMEOUT = 3.0
TOTAL_TIMEOUT = 10.0
GIVE_UP_AFTER = timedelta(days=1)
RETRY_BASE = 30.0
RETRY_CAP = 3600.0
USER_AGENT = "crawlgraph-webhooks/1"
_CLAIM = QUERIES["claim_delivery"]
_RECORD = QUERIES["record_attempt"]
_SETTLE = QUERIES["settle_delivery"]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def retry_delay(attempt: int, base: float = RETRY_BASE, cap: float = RETRY_CAP) -> float:
    """Seconds before the try after failed try number `attempt` (1, 2, ...): base * 2^(n-1),
    at most `cap`, times a random factor in [0.5, 1) so that receivers coming back are not
    hit by every sender at once."""
    return min(base * 2 ** min(attempt - 1, 30), cap) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Answer:
    status: int | None
    body: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def _addresses(host: str, port: int) -> list[IPAddress]:
    literal = parse_host(host)
    if literal is not None:
        return [literal]
    return await resolve(host, port, timeout=CONNECT_TIMEOUT)


async def checked_addresses(url: str, *, allow_private_networks: bool) -> list[IPAddress]:
    """The addresses to try for `url`, in the resolver's order, or ValueError saying why
    there are none (a name that does not resolve, or resolves to a non-public address)."""
    host, port = split_url(url)
    addresses = list(dict.fromkeys(await _addresses(host, port)))
    if not addresses:
        raise ValueError(f"{host} does not resolve")
    if not allow_private_networks:
        for address in addresses:
            reason = classify(address)
            if reason:
                raise ValueError(f"{host} resolves to {address}, {reason}: refused "
                                 "(ALLOW_PRIVATE_NETWORKS=1 allows it)")
    return addresses[:MAX_ADDRESSES]


def _text(raw: bytes) -> str:
    return raw[:BODY_EXCERPT].decode("utf-8", "replace").replace("\x00", "\ufffd")


async def _post_to(address: IPAddress, target: httpx.URL, body: bytes,
                   headers: dict[str, str]) -> Answer:
    pinned = target.copy_with(host=str(address))
    timeout = httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with asyncio.timeout(TOTAL_TIMEOUT), httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False) as client:
        # Host header and TLS (SNI, certificate check) name the URL's host, not the address.
        request = client.build_request("POST", pinned, content=body, headers=headers,
                                       extensions={"sni_hostname": target.host})
        response = await client.send(request, stream=True)
        try:
            raw = b""
            async for chunk in response.aiter_raw():
                raw += chunk
                if len(raw) >= BODY_EXCERPT:
                    break
        finally:
            await response.aclose()
    return Answer(response.status_code, _text(raw), None)


async def post(url: str, body: bytes, headers: dict[str, str], *,
               allow_private_networks: bool) -> Answer:
    """POST `body` to `url` at an address checked now; the status and the answer's start.

    The addresses are tried in turn while one cannot be connected to (an IPv6 address
    first on a machine without an IPv6 route), never after a connection was made.
    """
    try:
        addresses = await checked_addresses(url, allow_private_networks=allow_private_networks)
    except ValueError as exc:
        return Answer(None, None, str(exc)[:BODY_EXCERPT])
    target = httpx.URL(url)
    headers = {**headers, "Host": target.netloc.decode("ascii")}
    error = ""
    for address in addresses:
        try:
            return await _post_to(address, target, body, headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error = f"{type(exc).__name__}: {address}: {exc}"
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return Answer(None, None, f"{type(exc).__name__}: {exc}"[:BODY_EXCERPT])
    return Answer(None, None, error[:BODY_EXCERPT])


def event_body(event_id: Any, event: str, created_at: datetime, data: dict) -> bytes:
    return msgspec.json.encode({"id": str(event_id), "type": event,
                                "created_at": created_at.isoformat(), "data": data})


async def deliver_one(pool: AsyncConnectionPool, *, allow_private_networks: bool,
                      retry_base: float = RETRY_BASE) -> bool:
    """Send the oldest due delivery, if any; True when there was one."""
    async with pool.connection() as conn, conn.transaction():
        row = await (await conn.execute(_CLAIM)).fetchone()
        if row is None:
            return False
        delivery, event_id, event, data, attempts, created_at, url, secret = row
        body = event_body(event_id, event, created_at, data)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   SIGNATURE_HEADER: sign(secret, int(time.time()), body),
                   "Crawlgraph-Event": event, "Crawlgraph-Delivery": str(event_id)}
        started = time.monotonic()
        answer = await post(url, body, headers, allow_private_networks=allow_private_networks)
        attempt = attempts + 1
        now = datetime.now(UTC)
        if answer.ok:
            state, next_at = "delivered", now
        elif now - created_at >= GIVE_UP_AFTER:
            state, next_at = "failed", now
        else:
            state = "pending"
            next_at = min(now + timedelta(seconds=retry_delay(attempt, retry_base)),
                          created_at + GIVE_UP_AFTER)
        await conn.execute(_RECORD, {
            "delivery": delivery, "attempt": attempt, "status": answer.status,
            "body": answer.body, "error": answer.error,
            "duration_ms": int((time.monotonic() - started) * 1000)})
        await conn.execute(_SETTLE, {"delivery": delivery, "attempt": attempt, "state": state,
                                     "next_attempt_at": next_at})
    log.info("webhook %s %s attempt %d: %s", event, event_id, attempt,
             answer.status if answer.status is not None else answer.error)
    return True
