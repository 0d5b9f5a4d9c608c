"""Idempotent batch writes to PostgreSQL: COPY into staging, then INSERT ... ON CONFLICT.

`PostgresStore.write(rows)` stores one batch in one transaction: the rows are
copied (binary COPY) into per-connection temporary staging tables and merged
into `pages`, `outlinks`, `redirects` and `items` with ``ON CONFLICT``, so
a replayed batch or a re-crawled page leaves one row. A page's links are one
row of `outlinks`, the ids of their targets packed; the URLs go to `urls`
first, and two URLs with one id are refused (`UrlIdCollision`). If the batch
fails for a reason that belongs to its rows (a NUL byte, bad encoding, a
constraint), it is split in halves until the failing rows are alone; those go
to `dead_letters` with their error and the rest is stored. A lost connection
or a batch the server rolled back (a deadlock) raises `StorageUnavailable`: the
caller keeps the batch and retries. The store is blocking: the pipeline runs it
in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import psycopg
import psycopg.errors

from core.errors import URL_ID_COLLISION_HINT
from crawler.pipelines.errors import StorageError, StorageUnavailable, UrlIdCollision
from crawler.pipelines.rows import Kind, Row, payload_of

logger = logging.getLogger(__name__)

# Temporary staging tables, one set per connection. Each batch deletes its rows
# in its own transaction: ON COMMIT DELETE ROWS truncates (new files) at every
# commit, which costs more than the batch; a TRUNCATE now and then drops the
# dead rows that autovacuum never sees in a temporary table.
STAGING_DDL: Final = """
CREATE TEMP TABLE IF NOT EXISTS cg_stage_pages (
    url text COLLATE "C", final_url text COLLATE "C", status integer, content_type text,
    title text, depth integer, fetched_at timestamptz, size bigint, content_hash text,
    elapsed_ms integer, rendered boolean, error text, canonical_url text COLLATE "C",
    discovered text, etag text, last_modified text, change text
) ON COMMIT PRESERVE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cg_stage_links (
    source_url text COLLATE "C", target_url text COLLATE "C", count integer,
    anchor_text text, nofollow boolean
) ON COMMIT PRESERVE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cg_stage_urls (url text COLLATE "C") ON COMMIT PRESERVE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cg_stage_redirects (
    url text COLLATE "C", target_url text COLLATE "C", status integer
) ON COMMIT PRESERVE ROWS;
CREATE TEMP TABLE IF NOT EXISTS cg_stage_items (
    fingerprint text, item_type text, url text COLLATE "C", data text
) ON COMMIT PRESERVE ROWS;
"""

COPY: Final[dict[Kind, str]] = {
    "page": "COPY cg_stage_pages FROM STDIN (FORMAT BINARY)",
    "link": "COPY cg_stage_links FROM STDIN (FORMAT BINARY)",
    "redirect": "COPY cg_stage_redirects FROM STDIN (FORMAT BINARY)",
    "item": "COPY cg_stage_items FROM STDIN (FORMAT BINARY)",
}
COPY_TYPES: Final[dict[Kind, list[str]]] = {
    "page": ["text", "text", "int4", "text", "text", "int4", "timestamptz", "int8", "text",
             "int4", "bool", "text", "text", "text", "text", "text", "text"],
    "link": ["text", "text", "int4", "text", "bool"],
    "redirect": ["text", "text", "int4"],
    "item": ["text", "text", "text", "text"],
}
# A re-crawl replaces what is known of a page; unchanged rows are not rewritten.
MERGE: Final[dict[Kind, str]] = {
    "page": """
INSERT INTO pages AS p (job_id, url, final_url, status, content_type, title, depth,
                        fetched_at, size, content_hash, elapsed_ms, rendered, error,
                        discovered, canonical_url, etag, last_modified, change)
SELECT %(job_id)s, url, final_url, status, content_type, title, depth, fetched_at, size,
       content_hash, elapsed_ms, rendered, error, discovered, canonical_url, etag,
       last_modified, change
FROM cg_stage_pages
ON CONFLICT (job_id, url) DO UPDATE SET
    final_url = EXCLUDED.final_url, status = EXCLUDED.status,
    content_type = EXCLUDED.content_type, title = EXCLUDED.title,
    depth = LEAST(p.depth, EXCLUDED.depth), fetched_at = EXCLUDED.fetched_at,
    size = EXCLUDED.size, content_hash = EXCLUDED.content_hash,
    elapsed_ms = EXCLUDED.elapsed_ms, rendered = EXCLUDED.rendered, error = EXCLUDED.error,
    -- how the crawl first reached the page stays (a row from before 0009 learns it)
    discovered = coalesce(p.discovered, EXCLUDED.discovered),
    -- what the page declares now (a page that dropped its canonical has none)
    canonical_url = EXCLUDED.canonical_url,
    etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified, change = EXCLUDED.change
""",
    # A page's links in one row (`outlinks`, migrations/0023_url_ids.sql). A page
    # whose links two batches carry (or a replayed batch) finds its row stored:
    # the batch's links are merged into it under its row lock, so that two
    # writers storing one page's links at once lose neither's; rows go in id
    # order, as the URLs do. A link's values
    # are set, never added to: a replayed page stores nothing twice.
    "link": """
INSERT INTO outlinks AS o (job_id, source_id, target_ids, counts, nofollow, anchor_texts)
SELECT %(job_id)s, s, string_agg(int8send(t), ''::bytea ORDER BY t),
       string_agg(int4send(count), ''::bytea ORDER BY t),
       string_agg(set_byte('\\x00'::bytea, 0, nofollow::int), ''::bytea ORDER BY t),
       array_agg(anchor_text ORDER BY t)
FROM (SELECT hashtextextended(source_url, 0) AS s, hashtextextended(target_url, 0) AS t,
             count, anchor_text, nofollow
      FROM cg_stage_links) AS batch
GROUP BY s
ORDER BY s
ON CONFLICT (job_id, source_id) DO UPDATE SET (target_ids, counts, nofollow, anchor_texts) = (
    SELECT string_agg(int8send(t), ''::bytea ORDER BY t),
           string_agg(int4send(c), ''::bytea ORDER BY t),
           string_agg(set_byte('\\x00'::bytea, 0, f), ''::bytea ORDER BY t),
           array_agg(a ORDER BY t)
    FROM (
        SELECT DISTINCT ON (t) t, c, f, a FROM (
            SELECT packed_int8(EXCLUDED.target_ids, n) AS t, packed_int4(EXCLUDED.counts, n) AS c,
                   get_byte(EXCLUDED.nofollow, n) AS f, EXCLUDED.anchor_texts[n + 1] AS a,
                   0 AS rank
            FROM generate_series(0, length(EXCLUDED.target_ids) / 8 - 1) AS n
            UNION ALL
            SELECT packed_int8(o.target_ids, n), packed_int4(o.counts, n), get_byte(o.nofollow, n),
                   o.anchor_texts[n + 1], 1
            FROM generate_series(0, length(o.target_ids) / 8 - 1) AS n
        ) AS stored_and_new
        ORDER BY t, rank
    ) AS merged
)
""",
    # A URL that redirects elsewhere now replaces where it led before.
    "redirect": """
INSERT INTO redirects AS r (job_id, url, target_url, status)
SELECT %(job_id)s, url, target_url, status FROM cg_stage_redirects
ON CONFLICT (job_id, url) DO UPDATE SET
    target_url = EXCLUDED.target_url, status = EXCLUDED.status
WHERE (r.target_url, r.status) IS DISTINCT FROM (EXCLUDED.target_url, EXCLUDED.status)
""",
    "item": """
INSERT INTO items (job_id, fingerprint, item_type, url, data)
SELECT %(job_id)s, fingerprint, item_type, url, data::jsonb
FROM cg_stage_items
ON CONFLICT (job_id, fingerprint) DO NOTHING
""",
}
# The links' URLs this store has not stored yet (`cg_stage_urls`) go under their
# ids (migrations/0023_url_ids.sql) before the links, in id order: two writers
# inserting shared URLs (every page links to the navigation) take their index
# entries in one order, so neither waits for the other in a cycle (a deadlock,
# tests/faults/test_concurrent_writers.py). Then a URL whose id another
# URL of the job holds (stored by an earlier batch or by this one) refuses the
# batch, which is split until that link is alone.
STORE_LINK_URLS: Final = """
INSERT INTO urls (job_id, id, url)
SELECT %(job_id)s, hashtextextended(url, 0) AS id, url FROM cg_stage_urls
ORDER BY id
ON CONFLICT (job_id, id) DO NOTHING
"""
LINK_URL_COLLISION: Final = """
SELECT s.url, u.url, u.id FROM cg_stage_urls AS s
JOIN urls AS u ON u.job_id = %(job_id)s AND u.id = hashtextextended(s.url, 0)
WHERE u.url <> s.url
LIMIT 1
"""
CLEAR_STAGED_URLS: Final = "DELETE FROM cg_stage_urls"
#: URLs a store remembers as stored (and checked) for its job, so that a batch
#: sends only the URLs it brings first; past this many it forgets them all.
KNOWN_URLS_MAX: Final = 500_000
CLEAR_STAGING: Final[dict[Kind, str]] = {
    "page": "DELETE FROM cg_stage_pages",
    "link": "DELETE FROM cg_stage_links",
    "redirect": "DELETE FROM cg_stage_redirects",
    "item": "DELETE FROM cg_stage_items",
}
TRUNCATE_STAGING: Final = ("TRUNCATE cg_stage_pages, cg_stage_links, cg_stage_redirects, "
                           "cg_stage_items, cg_stage_urls")
TRUNCATE_EVERY: Final = 10  # batches
INSERT_DEAD_LETTER: Final = """
INSERT INTO dead_letters (job_id, kind, payload, error) VALUES (%s, %s, %s, %s)
"""
_ORDER: Final[tuple[Kind, ...]] = ("page", "link", "redirect", "item")


@dataclass
class WriteResult:
    """What a batch became: rows stored and rows sent to dead_letters."""

    stored: int = 0
    dead: list[tuple[Kind, str, str]] = field(default_factory=list)


class PostgresStore:
    """Writes batches of rows for one job; blocking, one connection, reconnects."""

    def __init__(self, database_url: str, job_id: str, *, connect_timeout: int = 5) -> None:
        self.database_url = database_url
        self.job_id = job_id
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self._batches = 0
        self._known_urls: set[str] = set()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, rows: Sequence[Row], dead: Sequence[tuple[Kind, str, str]] = ()) -> WriteResult:
        """Store `rows` (and already-rejected `dead` rows) for good; see the module docstring."""
        try:
            conn = self._connection()
            result = WriteResult()
            try:
                self._write_rows(conn, rows)
                result.stored = len(rows)
            except (psycopg.Error, ValueError, UnicodeError, UrlIdCollision) as exc:
                if conn.broken or _unavailable(exc):
                    raise
                conn.rollback()
                self._isolate(conn, list(rows), exc, result)
            result.dead[:0] = dead
            if result.dead:
                self._write_dead(conn, result.dead)
            return result
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # SQLSTATE class 40 (a deadlock, a serialization failure): the server is
            # fine, so the connection, its staging tables and the URLs it stored stay.
            if _rolled_back(exc) and self._conn is not None and not self._conn.broken:
                self._conn.rollback()
                raise StorageUnavailable(f"PostgreSQL rolled the batch back: {exc}") from exc
            self.close()
            raise StorageUnavailable(f"PostgreSQL is unavailable: {exc}") from exc

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self.close()
        if self._conn is None:
            conn = psycopg.connect(self.database_url, connect_timeout=self.connect_timeout)
            conn.execute(STAGING_DDL)
            conn.commit()
            self._conn = conn
        return self._conn

    def _write_rows(self, conn: psycopg.Connection, rows: Sequence[Row]) -> None:
        # One row per primary key: ON CONFLICT cannot touch a row twice in a statement.
        by_kind: dict[Kind, dict] = {kind: {} for kind in _ORDER}
        for row in rows:
            by_kind[row.kind][row.key] = row.values
        new_urls: set[str] = set()
        with conn.transaction():
            with conn.cursor() as cur:
                for kind in _ORDER:
                    values = by_kind[kind]
                    if not values:
                        continue
                    with cur.copy(COPY[kind]) as copy:
                        copy.set_types(COPY_TYPES[kind])
                        for value in values.values():
                            copy.write_row(value)
                    if kind == "link":
                        new_urls = self._store_link_urls(cur, values)
                    cur.execute(MERGE[kind], {"job_id": self.job_id})
                    cur.execute(CLEAR_STAGING[kind])
        if len(self._known_urls) + len(new_urls) > KNOWN_URLS_MAX:
            self._known_urls.clear()
        self._known_urls |= new_urls
        self._batches += 1
        if self._batches % TRUNCATE_EVERY == 0:
            conn.execute(TRUNCATE_STAGING)
            conn.commit()

    def _store_link_urls(self, cur: psycopg.Cursor, links: dict) -> set[str]:
        """Store the links' URLs this store has not; return them (known once committed)."""
        new = {url for source, target in links for url in (source, target)} - self._known_urls
        if not new:
            return new
        with cur.copy("COPY cg_stage_urls FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text"])
            for url in new:
                copy.write_row((url,))
        cur.execute(STORE_LINK_URLS, {"job_id": self.job_id})
        collision = cur.execute(LINK_URL_COLLISION, {"job_id": self.job_id}).fetchone()
        cur.execute(CLEAR_STAGED_URLS)
        if collision is None:
            return new
        url, other, url_id = collision
        raise UrlIdCollision(
            f"URL id collision: {url!r} and {other!r} share the id {url_id} in job "
            f"{self.job_id}; the link is not stored.",
            hint=URL_ID_COLLISION_HINT)

    def _isolate(self, conn: psycopg.Connection, rows: list[Row], error: Exception,
                 result: WriteResult) -> None:
        """Store what can be stored; single failing rows become dead letters."""
        if len(rows) == 1:
            row = rows[0]
            logger.warning("storage: %s row sent to dead_letters: %s", row.kind, error)
            result.dead.append((row.kind, payload_of(row), _message(error)))
            return
        middle = len(rows) // 2
        for half in (rows[:middle], rows[middle:]):
            try:
                self._write_rows(conn, half)
                result.stored += len(half)
            except (psycopg.Error, ValueError, UnicodeError, UrlIdCollision) as exc:
                if conn.broken or _unavailable(exc):
                    raise
                conn.rollback()
                self._isolate(conn, half, exc, result)

    def _write_dead(self, conn: psycopg.Connection, dead: Sequence[tuple[Kind, str, str]]) -> None:
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(INSERT_DEAD_LETTER,
                                [(self.job_id, kind, payload, error)
                                 for kind, payload, error in dead])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise StorageError(
                f"Cannot write {len(dead)} dead letters for job {self.job_id}: {exc}",
                hint="Check that the job row exists.",
            ) from exc


def _unavailable(error: Exception) -> bool:
    """True for a failure of the server or the connection (keep the batch and retry).

    psycopg files "program limit exceeded" (a value too big for an index, such as
    a megabyte-long URL) under OperationalError too, but it belongs to the row:
    retrying would stall the crawl on that batch forever.
    """
    return isinstance(error, psycopg.OperationalError) and not isinstance(
        error, psycopg.errors.ProgramLimitExceeded)


def _rolled_back(error: Exception) -> bool:
    """True for SQLSTATE class 40; psycopg files 40P01 (deadlock) under OperationalError."""
    return (getattr(error, "sqlstate", None) or "").startswith("40")


def _message(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}"[:2000]
