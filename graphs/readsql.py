"""The SQL of the graph read (`graphs.read`): packed binary COPY statements.

Kept apart from the reading code so that each query stands with the reason
for its shape.
"""

from __future__ import annotations

from psycopg import sql

# A row of `outlinks` holds a page's links packed: the 64-bit ids of their
# targets (`urls`: the server's hash of each URL, which the node queries compute
# for the URLs of pages and redirects), their counts and nofollow flags, as
# big-endian arrays. Postgres sends COPY output one protocol message per row,
# and a Python loop over millions of messages costs seconds, so the rows are
# joined server-side into one row of bytea columns, decoded by `np.frombuffer`:
# no work per link on the server. A COPY row is built in one buffer of at most
# 1 GB, 13 bytes a link: one row would fail above about 80 million links
# ("Cannot enlarge string buffer"), so the rows are packed in 64 rows by source
# id (one job's 100 million links make 64 rows of about 20 MB), hashed rather
# than sorted (`SET_NO_SORT`). The columns of a row are aggregated in one order.
EDGES_COPY = """
COPY (
    SELECT string_agg(int8send(source_id), ''::bytea),
           string_agg(int4send(length(target_ids) / 8), ''::bytea),
           string_agg(target_ids, ''::bytea), string_agg(counts, ''::bytea),
           string_agg(nofollow, ''::bytea)
    FROM outlinks WHERE job_id = ANY(%(jobs)s)
    GROUP BY source_id & 63
) TO STDOUT (FORMAT BINARY)
"""

# The nodes come in two parts, neither grouped by URL on the server (grouping a
# few million texts, hashing each, was most of the read): `urls` as it is stored
# (one row per URL of a job, under its id), and a row for each URL that a stored
# page (its request URL and, after a redirect, its final URL), an end of a
# redirect hop or a canonical URL a page declares makes a node, with its id (the
# server's hash of the text, the id `urls` stores), crawl status and discovery
# code. The client merges them by id (`graphs.readnodes`); the URL text of both
# parts is sent, so that two URLs with one id are told apart there.
URLS = "SELECT id AS h, url FROM urls WHERE job_id = ANY(%(jobs)s)"
# Status: -1 not fetched; a URL that redirected was fetched: its status, 0 for a
# meta refresh. Discovery: a code of `DISCOVERY`, the position in this array (a
# stored page's `discovered`, also for its final URL), 0 when the row says none.
ENDPOINTS = """
    SELECT hashtextextended(url, 0) AS h, status, coalesce(d, 0)::int2 AS d, url FROM (
        SELECT url, status, array_position('{start,link,sitemap}'::text[], discovered) AS d
        FROM pages WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT final_url, status, array_position('{start,link,sitemap}'::text[], discovered)
        FROM pages
        WHERE job_id = ANY(%(jobs)s) AND final_url <> url AND final_url ~ '^https?://'
        UNION ALL
        SELECT url, coalesce(status, 0), NULL FROM redirects WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT target_url, -1, NULL FROM redirects WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT canonical_url, -1, NULL FROM pages
        WHERE job_id = ANY(%(jobs)s) AND canonical_url IS NOT NULL
    ) AS endpoints
"""
# One hop per URL that redirected: its row in `redirects` if it has one (a hop
# of the chain), else where its stored page landed (the end of the chain).
REDIRECTS_COPY = """
COPY (
    SELECT string_agg(int8send(hashtextextended(url, 0)), ''::bytea),
           string_agg(int8send(hashtextextended(target, 0)), ''::bytea)
    FROM (
        SELECT DISTINCT ON (url) url, target FROM (
            SELECT url, target_url AS target, 0 AS rank FROM redirects
            WHERE job_id = ANY(%(jobs)s)
            UNION ALL
            SELECT url, final_url, 1 FROM pages
            WHERE job_id = ANY(%(jobs)s) AND final_url <> url AND final_url ~ '^https?://'
        ) AS hops
        ORDER BY url, rank, target
    ) AS r
) TO STDOUT (FORMAT BINARY)
"""


# One canonical per page that declares one, on the URL its document was served
# at (the final URL); where jobs disagree, the least URL. Packed the same way.
CANONICALS_COPY = """
COPY (
    SELECT string_agg(int8send(hashtextextended(page, 0)), ''::bytea),
           string_agg(int8send(hashtextextended(canonical, 0)), ''::bytea)
    FROM (
        SELECT DISTINCT ON (final_url) final_url AS page, canonical_url AS canonical
        FROM pages
        WHERE job_id = ANY(%(jobs)s) AND canonical_url IS NOT NULL
          AND final_url ~ '^https?://'
        ORDER BY final_url, canonical_url
    ) AS c
) TO STDOUT (FORMAT BINARY)
"""


# Packed like the links, in 64 rows (by id) so that the URL text of no row nears
# the 1 GB limit; URLs joined by newlines (a URL that contains one makes the counts
# disagree, and the read falls back to rows).
URLS_COPY = sql.SQL("""
COPY (
    SELECT string_agg(int8send(h), ''::bytea), string_agg(url, E'\\n')
    FROM ({nodes}) AS n
    GROUP BY h & 63
) TO STDOUT (FORMAT BINARY)
""").format(nodes=sql.SQL(URLS))
ENDPOINTS_COPY = sql.SQL("""
COPY (
    SELECT string_agg(int8send(h), ''::bytea), string_agg(int4send(status), ''::bytea),
           string_agg(int2send(d), ''::bytea), string_agg(url, E'\\n')
    FROM ({nodes}) AS n
    GROUP BY h & 63
) TO STDOUT (FORMAT BINARY)
""").format(nodes=sql.SQL(ENDPOINTS))
# The rows fallbacks, text COPY (its escapes keep a newline inside a URL apart).
URLS_ROWS_COPY = sql.SQL("COPY (SELECT h, url FROM ({nodes}) AS n) TO STDOUT").format(
    nodes=sql.SQL(URLS))
ENDPOINTS_ROWS_COPY = sql.SQL(
    "COPY (SELECT h, status, d, url FROM ({nodes}) AS n) TO STDOUT").format(
    nodes=sql.SQL(ENDPOINTS))

# The packing and the grouping of the redirects and canonicals may need more than
# the default 4 MB, which would spill to disk.
SET_WORK_MEM = "SET LOCAL work_mem = '512MB'"
# The planner takes `h & 63` of a column for as many groups as the column has
# values, and sorts a million rows of `urls` (most of the time of URLS_COPY) to
# build 64 groups: the node streams are read without sorting. (The redirects and
# canonicals, read after urls on the same connection, need their sorts back.)
SET_NO_SORT = "SET LOCAL enable_sort = off"
SET_SORT = "SET LOCAL enable_sort = on"
BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
