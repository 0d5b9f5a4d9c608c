"""A job's rows in every table that hangs from it, made in SQL (the retention tests).

`fill_job` writes `pages` pages and `links_per_page` links each, and a few rows
of the smaller tables; `rows_of` counts them back, table by table, so a test
can say that a purge removed exactly one job's rows.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql

JOB_TABLES = ("pages", "links", "urls", "items", "redirects", "robots_decisions", "crawl_events",
              "dead_letters", "warc_files")

_FILL = (
    """INSERT INTO pages (job_id, url, final_url, status, fetched_at)
       SELECT %(job)s, 'https://a.example/p/' || n, 'https://a.example/p/' || n, 200, now()
       FROM generate_series(1, %(pages)s) n""",
    """INSERT INTO urls (job_id, id, url)
       SELECT DISTINCT %(job)s, hashtextextended(u, 0), u FROM (
           SELECT 'https://a.example/p/' || n FROM generate_series(1, %(pages)s) n
           UNION ALL
           SELECT 'https://a.example/p/' || (n * 7 + k)
           FROM generate_series(1, %(pages)s) n, generate_series(1, %(links_per_page)s) k
       ) AS e (u)""",
    """INSERT INTO outlinks (job_id, source_id, target_ids, counts, nofollow, anchor_texts)
       SELECT %(job)s, s, string_agg(int8send(t), ''::bytea ORDER BY t),
              string_agg(int4send(1), ''::bytea), string_agg('\\x00'::bytea, ''::bytea),
              array_agg(''::text)
       FROM (SELECT hashtextextended('https://a.example/p/' || n, 0) AS s,
                    hashtextextended('https://a.example/p/' || (n * 7 + k), 0) AS t
             FROM generate_series(1, %(pages)s) n, generate_series(1, %(links_per_page)s) k
       ) AS l GROUP BY s""",
    """INSERT INTO items (job_id, fingerprint, item_type, url, data)
       SELECT %(job)s, 'f' || n, 'page', 'https://a.example/p/' || n, '{}'::jsonb
       FROM generate_series(1, 5) n""",
    """INSERT INTO redirects (job_id, url, target_url, status)
       SELECT %(job)s, 'http://a.example/r/' || n, 'https://a.example/p/' || n, 301
       FROM generate_series(1, 5) n""",
    """INSERT INTO robots_decisions (job_id, url, host, decision)
       SELECT %(job)s, 'https://a.example/private/' || n, 'a.example', 'disallowed'
       FROM generate_series(1, 5) n""",
    """INSERT INTO crawl_events (job_id, host, kind, url)
       SELECT %(job)s, 'a.example', 'block_signal', 'https://a.example/p/' || n
       FROM generate_series(1, 5) n""",
    """INSERT INTO dead_letters (job_id, kind, payload, error)
       SELECT %(job)s, 'page', '{}', 'a test' FROM generate_series(1, 3) n""",
)


def fill_job(conn: psycopg.Connection, job_id: uuid.UUID, *, pages: int = 50,
             links_per_page: int = 4) -> None:
    for statement in _FILL:
        conn.execute(statement, {"job": job_id, "pages": pages,
                                 "links_per_page": links_per_page})


def rows_of(conn: psycopg.Connection, job_id: uuid.UUID) -> dict[str, int]:
    """How many rows each table holds for the job."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE job_id = %s")
    return {table: conn.execute(query.format(sql.Identifier(table)), (job_id,)).fetchone()[0]
            for table in JOB_TABLES}


def add_build(conn: psycopg.Connection, owner_id: int, job_ids: list[uuid.UUID], *,
              status: str = "done", nodes: int = 30, path: str | None = None) -> uuid.UUID:
    """A graph build of the jobs with `nodes` rows in graph_nodes."""
    build_id = uuid.uuid4()
    conn.execute("INSERT INTO graph_builds (id, owner_id, level, status, path) "
                 "VALUES (%s, %s, 'page', %s, %s)", (build_id, owner_id, status, path))
    conn.execute("INSERT INTO graph_build_jobs (build_id, job_id) "
                 "SELECT %s, unnest(%s::uuid[])", (build_id, job_ids))
    conn.execute("INSERT INTO graph_nodes (build_id, node_id, label) "
                 "SELECT %s, n, 'https://a.example/p/' || n FROM generate_series(0, %s - 1) n",
                 (build_id, nodes))
    return build_id
