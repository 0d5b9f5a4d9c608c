"""Rows for graph tests: a user, a job, pages and links, written straight to Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg


def make_user(conn: psycopg.Connection, username: str = "alice", role: str = "user") -> int:
    row = conn.execute(
        "INSERT INTO users (username, password_hash, role) VALUES (%s, 'x', %s) RETURNING id",
        (username, role),
    ).fetchone()
    return row[0]


def make_job(conn: psycopg.Connection, owner_id: int, status: str = "finished") -> uuid.UUID:
    job_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO jobs (id, owner_id, spider, status) VALUES (%s, %s, 'site', %s)",
        (job_id, owner_id, status),
    )
    return job_id


def add_pages(conn: psycopg.Connection, job_id: uuid.UUID, urls: Iterable[str],
              status: int = 200) -> None:
    now = datetime.now(UTC)
    with conn.cursor() as cur, cur.copy(
        "COPY pages (job_id, url, final_url, status, fetched_at) FROM STDIN"
    ) as copy:
        for url in urls:
            copy.write_row((job_id, url, url, status, now))


def add_links(conn: psycopg.Connection, job_id: uuid.UUID,
              links: Iterable[tuple[str, str, int, bool] | tuple[str, str, int, bool, str]]
              ) -> None:
    """Store links as the storage pipeline does: their URLs in `urls`, the links by id.

    A link is (source, target, count, nofollow) or (…, anchor_text)."""
    conn.execute("CREATE TEMP TABLE test_links (source_url text, "
                 "target_url text, count integer, nofollow boolean, anchor_text text)")
    with conn.cursor() as cur, cur.copy(
        "COPY test_links (source_url, target_url, count, nofollow, anchor_text) FROM STDIN"
    ) as copy:
        for source, target, count, nofollow, *anchor in links:
            copy.write_row((source, target, count, nofollow, anchor[0] if anchor else ""))
    conn.execute(
        "INSERT INTO urls (job_id, id, url) SELECT %s, hashtextextended(u, 0), u FROM ("
        "SELECT source_url FROM test_links UNION SELECT target_url FROM test_links) AS e (u) "
        "ON CONFLICT DO NOTHING", (job_id,))
    conn.execute(
        "INSERT INTO links (job_id, source_id, target_id, count, nofollow, anchor_text) "
        "SELECT %s, hashtextextended(source_url, 0), hashtextextended(target_url, 0), count, "
        "nofollow, anchor_text FROM test_links", (job_id,))
    conn.execute("DROP TABLE test_links")
