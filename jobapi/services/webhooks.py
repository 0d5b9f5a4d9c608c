"""Webhooks as the API keeps them: create, list, delete, and read their deliveries.

Ownership is as for jobs and schedules: a user sees and deletes only their own
webhooks, another user's is a NotFound (404), an admin sees all. A webhook
with a `schedule_id` gets the events of that schedule's jobs (the schedule must
be the user's); without one, of all the owner's jobs and graph builds. The URL
must be http(s) and pass the private-address guard (`urlguard`) unless private
networks are allowed; the sender checks it again at each delivery
(`webhooks_send`). The secret is made here and shown once.
"""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import urlsplit

from psycopg_pool import AsyncConnectionPool

from jobapi.auth import CurrentUser
from jobapi.errors import BadRequest, NotFound, Unprocessable
from jobapi.services.listings import created_id_cursor, decode_cursor, keyset_page
from jobapi.services.urlguard import check_urls
from jobapi.services.webhooks_models import (
    Attempt,
    Delivery,
    Webhook,
    WebhookCreate,
    WebhookCreated,
)
from jobapi.sql import QUERIES

_INSERT = QUERIES["insert_webhook"]
_BY_ID = QUERIES["webhook_by_id"]
_DELETE = QUERIES["delete_webhook"]
_LIST = QUERIES["list_webhooks"]
_SCHEDULE_OWNER = QUERIES["schedule_owner"]
_DELIVERIES = QUERIES["list_deliveries"]
_ATTEMPTS = QUERIES["attempts_of"]


def webhook_from_row(row: tuple) -> Webhook:
    return Webhook(id=row[0], owner_id=row[1], schedule_id=row[2], url=row[3],
                   events=list(row[4]), created_at=row[5])


def _not_found(webhook_id: uuid.UUID) -> NotFound:
    return NotFound(f"There is no webhook {webhook_id}.",
                    hint="GET /api/v1/webhooks lists your webhooks.")


def split_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL, or Unprocessable saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Unprocessable(f"url: {url[:200]} is not a URL.", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable(f"url: {url[:200]} is not an http(s) URL with a host.",
                            field="url", hint="Give a URL such as https://example.org/hook.")
    if parts.username is not None or parts.password is not None:
        raise Unprocessable("url: a webhook URL may not carry a user name or password.",
                            field="url", hint="Check the signature header instead.")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def create_webhook(pool: AsyncConnectionPool, user: CurrentUser, body: WebhookCreate, *,
                         allow_private_networks: bool) -> WebhookCreated:
    """Store a webhook of `user`'s with a new secret; the answer is the one that shows it."""
    host, port = split_url(body.url)
    if not allow_private_networks:
        await check_urls([("url", body.url, host, port)])
    async with pool.connection() as conn:
        if body.schedule_id is not None:
            owner = await (await conn.execute(_SCHEDULE_OWNER, (body.schedule_id,))).fetchone()
            if owner is None or not (user.is_admin or owner[0] == user.id):
                raise Unprocessable(f"schedule_id: there is no schedule {body.schedule_id}.",
                                    field="schedule_id",
                                    hint="GET /api/v1/schedules lists your schedules.")
        secret = "whsec_" + secrets.token_urlsafe(32)
        row = await (await conn.execute(_INSERT, {
            "id": uuid.uuid4(), "owner_id": user.id, "schedule_id": body.schedule_id,
            "url": body.url, "secret": secret, "events": sorted(set(body.events)),
        })).fetchone()
    hook = webhook_from_row(row)
    return WebhookCreated(**{f: getattr(hook, f) for f in hook.__struct_fields__}, secret=secret)


async def _owned(pool: AsyncConnectionPool, webhook_id: uuid.UUID, user: CurrentUser) -> tuple:
    async with pool.connection() as conn:
        row = await (await conn.execute(_BY_ID, (webhook_id,))).fetchone()
    if row is None or not (user.is_admin or row[1] == user.id):
        raise _not_found(webhook_id)
    return row


async def list_webhooks(pool: AsyncConnectionPool, user: CurrentUser, *, cursor: str | None,
                        limit: int) -> tuple[list[Webhook], str | None]:
    """The user's webhooks (an admin's: all), newest first."""
    after_created, after_id = created_id_cursor(cursor)
    params = {"owner": None if user.is_admin else user.id, "after_created": after_created,
              "after_id": after_id}
    rows, next_cursor = await keyset_page(pool, _LIST, params, limit,
                                          lambda r: (r[5], str(r[0])))
    return [webhook_from_row(r) for r in rows], next_cursor


async def delete_webhook(pool: AsyncConnectionPool, webhook_id: uuid.UUID,
                         user: CurrentUser) -> None:
    """Delete the webhook and its deliveries; pending ones are not sent."""
    await _owned(pool, webhook_id, user)
    async with pool.connection() as conn:
        await conn.execute(_DELETE, (webhook_id,))


async def list_deliveries(pool: AsyncConnectionPool, webhook_id: uuid.UUID, user: CurrentUser,
                          *, cursor: str | None, limit: int) -> tuple[list[Delivery], str | None]:
    """The webhook's deliveries newest first, each with every attempt and its answer."""
    await _owned(pool, webhook_id, user)
    before = None
    if cursor is not None:
        (value,) = decode_cursor(cursor, 1)
        if not isinstance(value, int):
            raise BadRequest("The cursor is not one this API made.", field="cursor")
        before = value
    rows, next_cursor = await keyset_page(pool, _DELIVERIES, {"webhook": webhook_id,
                                                              "before": before}, limit,
                                          lambda r: (r[0],))
    logs: dict[int, list[Attempt]] = {r[0]: [] for r in rows}
    if rows:
        async with pool.connection() as conn:
            for a in await (await conn.execute(_ATTEMPTS, (list(logs),))).fetchall():
                logs[a[0]].append(Attempt(attempt=a[1], attempted_at=a[2], status=a[3],
                                          body=a[4], error=a[5], duration_ms=a[6]))
    return [Delivery(id=r[0], event_id=r[1], event=r[2], state=r[3], attempts=r[4],
                     next_attempt_at=r[5], created_at=r[6], finished_at=r[7], log=logs[r[0]])
            for r in rows], next_cursor
