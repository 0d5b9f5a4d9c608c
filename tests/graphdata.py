"""Rows for graph tests: a user, a job, pages and links, written straight to Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg

from crawler.pipelines.store import MERGE, STAGING_DDL


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
    """Store links with the storage pipeline's own SQL: their URLs in `urls`, each
    page's links in a row of `outlinks`.

    A link is (source, target, count, nofollow) or (…, anchor_text)."""
    conn.execute(STAGING_DDL)
    with conn.cursor() as cur, cur.copy(
        "COPY cg_stage_links (source_url, target_url, count, nofollow, anchor_text) FROM STDIN"
    ) as copy:
        for source, target, count, nofollow, *anchor in links:
            copy.write_row((source, target, count, nofollow, anchor[0] if anchor else ""))
    conn.execute(
        "INSERT INTO urls (job_id, id, url) SELECT %s, hashtextextended(u, 0), u FROM ("
        "SELECT source_url FROM cg_stage_links UNION SELECT target_url FROM cg_stage_links) "
        "AS e (u) ON CONFLICT DO NOTHING", (job_id,))
    conn.execute(MERGE["link"], {"job_id": job_id})
    conn.execute("DROP TABLE cg_stage_pages, cg_stage_links, cg_stage_urls, cg_stage_redirects, "
                 "cg_stage_items")
