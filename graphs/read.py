"""Read the links and pages of one or more crawl jobs out of Postgres into numpy arrays.

Two binary COPY statements run at once on two connections that share one
exported snapshot (read-only REPEATABLE READ), so they see the same data:

* the links: each URL reduced to a 64-bit hash by the server
  (`hashtextextended`), the columns packed server-side into bytea values that
  are big-endian arrays, decoded by `np.frombuffer` — no Python loop per link,
  and not one protocol message per link either;
* the nodes: each distinct URL with its hash, best crawl status and how the
  crawl first reached it (a code of `DISCOVERY`), for the stored pages, both
  ends of every redirect and the link targets that are not pages (every link
  endpoint when a link source is not a stored page), packed
  the same way with the URLs joined by newlines and split by `str.split` (a C
  loop).

After the links, the first connection reads the redirects the same way: one
(URL, where it led) pair per URL that redirected, from `redirects` (one row
per hop) and, for a URL without one there, from `pages` (the URL asked for
and the final URL, which is all a crawl stored before `redirects` existed).

Edge and redirect endpoints are matched to nodes with `np.searchsorted`. Two
distinct URLs with the same 64-bit hash are detected (the node hashes would
not be unique) and the read is repeated with another hash seed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from graphs.errors import GraphBuildFailed

# Postgres sends COPY output one protocol message per row, and a Python loop
# over ten million messages costs seconds. So the links are packed server-side
# into one row of bytea columns that are the big-endian arrays themselves,
# decoded by `np.frombuffer` (half the time of the row-per-link COPY). A bytea
# holds at most 1 GB: up to about 130 million links per build.
_EDGES_COPY = """
COPY (
    SELECT string_agg(int8send(s), ''::bytea), string_agg(int8send(t), ''::bytea),
           string_agg(int4send(c), ''::bytea), string_agg(boolsend(n), ''::bytea)
    FROM (
        SELECT hashtextextended(source_url, %(seed)s) AS s,
               hashtextextended(target_url, %(seed)s) AS t, count AS c, nofollow AS n
        FROM links WHERE job_id = ANY(%(jobs)s)
    ) AS l
) TO STDOUT (FORMAT BINARY)
"""

# Every URL that is a link endpoint, a stored page (its request URL and, after
# a redirect, its final URL) or an end of a redirect hop, with the best crawl
# status seen (-1: not fetched; a URL that redirected was fetched: its status,
# 0 for a meta refresh) and how the crawl first reached it (a code of
# `DISCOVERY`, the position in this array: a stored page's `discovered`, also
# for its final URL; the first of start, link, sitemap when jobs differ; 0 for
# a URL no page row says it of).
_NODES_ALL = """
    SELECT hashtextextended(url, %(seed)s) AS h, max(status) AS status,
           coalesce(min(d), 0)::int2 AS d, url FROM (
        SELECT source_url AS url, -1 AS status, NULL::int AS d FROM links
        WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT target_url, -1, NULL FROM links WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT url, status, array_position('{start,link,sitemap}'::text[], discovered)
        FROM pages WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT final_url, status, array_position('{start,link,sitemap}'::text[], discovered)
        FROM pages
        WHERE job_id = ANY(%(jobs)s) AND final_url <> url AND final_url ~ '^https?://'
        UNION ALL
        SELECT url, coalesce(status, 0), NULL FROM redirects WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT target_url, -1, NULL FROM redirects WHERE job_id = ANY(%(jobs)s)
    ) AS endpoints
    GROUP BY url
"""
# The same set, usually, for much less work: the stored pages and the link
# targets that are not stored pages (an anti-join on the pages' primary key),
# leaving out link sources, which are pages. The read checks that every link
# endpoint is among these nodes, and reads `_NODES_ALL` in the same snapshot
# when one is not.
_NODES_FAST = """
    SELECT hashtextextended(url, %(seed)s) AS h, max(status) AS status,
           coalesce(min(d), 0)::int2 AS d, url FROM (
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
        SELECT DISTINCT l.target_url, -1, NULL::int FROM links AS l
        WHERE l.job_id = ANY(%(jobs)s) AND NOT EXISTS (
            SELECT 1 FROM pages AS p WHERE p.job_id = ANY(%(jobs)s) AND p.url = l.target_url)
    ) AS endpoints
    GROUP BY url
"""

# One hop per URL that redirected: its row in `redirects` if it has one (a hop
# of the chain), else where its stored page landed (the end of the chain).
_REDIRECTS_COPY = """
COPY (
    SELECT string_agg(int8send(hashtextextended(url, %(seed)s)), ''::bytea),
           string_agg(int8send(hashtextextended(target, %(seed)s)), ''::bytea)
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


def _packed(nodes: str) -> sql.Composed:
    # Packed like the links, in 64 rows so that the URL text of no row nears the
    # 1 GB limit; URLs joined by newlines (a URL that contains one makes the counts
    # disagree, and the read falls back to rows).
    return sql.SQL("""
COPY (
    SELECT string_agg(int8send(h), ''::bytea), string_agg(int4send(status), ''::bytea),
           string_agg(int2send(d), ''::bytea), string_agg(url, E'\\n')
    FROM ({nodes}) AS n
    GROUP BY h & 63
) TO STDOUT (FORMAT BINARY)
""").format(nodes=sql.SQL(nodes))


_NODES_FAST_COPY = _packed(_NODES_FAST)
_NODES_COPY = _packed(_NODES_ALL)
# The rows read leaves the discovery codes to a packed read without the URLs.
_NODES_ROWS_COPY = sql.SQL("COPY (SELECT h, status, url FROM ({nodes}) AS n) TO STDOUT").format(
    nodes=sql.SQL(_NODES_ALL))
_DISCOVERED_COPY = sql.SQL("""
COPY (
    SELECT string_agg(int8send(h), ''::bytea), string_agg(int2send(d), ''::bytea)
    FROM ({nodes}) AS n
    GROUP BY h & 63
) TO STDOUT (FORMAT BINARY)
""").format(nodes=sql.SQL(_NODES_ALL))

# Grouping a few million URLs fits in memory with this; the default (4 MB)
# would spill the hash table to disk.
_SET_WORK_MEM = "SET LOCAL work_mem = '512MB'"
_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

#: The values of a node's `discovered` code (`pages.discovered`, in the order of
#: the array the node queries look it up in; "" for none).
DISCOVERY = ("", "start", "link", "sitemap")

_HEADER = b"PGCOPY\n\xff\r\n\x00"
_MAX_SEEDS = 4
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


@dataclass
class LinkTable:
    """The links of some jobs as arrays; node ids index `urls`/`status`."""

    urls: list[str]
    status: np.ndarray  # int32 per node, -1 when the URL was not fetched
    source: np.ndarray  # int64 node id per link
    target: np.ndarray  # int64 node id per link
    count: np.ndarray  # int32 per link: <a> elements on the source page pointing at the target
    nofollow: np.ndarray  # bool per link
    # One hop per URL that redirected: node ids of the URL and of where it led.
    redirect_source: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    redirect_target: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    # int8 per node: how the crawl first reached it, an index of `DISCOVERY` (empty: unknown).
    discovered: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    # True when no (source, target) pair occurs twice (one job: the links' primary key).
    unique_pairs: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def node_count(self) -> int:
        return len(self.urls)

    @property
    def link_count(self) -> int:
        return len(self.source)

    @property
    def redirect_count(self) -> int:
        return len(self.redirect_source)


def _binary_rows(buf: bytes | bytearray) -> list[list[bytes | None]]:
    """The rows of a binary COPY stream (few rows here, so a Python loop is fine)."""
    view = memoryview(buf)
    if len(view) < 19 or bytes(view[:11]) != _HEADER:
        raise GraphBuildFailed("The COPY stream has no binary COPY header.")
    pos = 19 + int.from_bytes(view[15:19], "big")
    rows = []
    while True:
        nfields = int.from_bytes(view[pos:pos + 2], "big", signed=True)
        pos += 2
        if nfields == -1:
            return rows
        row: list[bytes | None] = []
        for _ in range(nfields):
            size = int.from_bytes(view[pos:pos + 4], "big", signed=True)
            pos += 4
            if size < 0:
                row.append(None)
            else:
                row.append(bytes(view[pos:pos + size]))
                pos += size
        rows.append(row)


def _column(rows: list[list[bytes | None]], index: int, dtype: str) -> np.ndarray:
    data = b"".join(row[index] or b"" for row in rows)
    return np.frombuffer(data, dtype=dtype)


def _decode_edges(buf: bytes | bytearray) -> dict[str, np.ndarray]:
    rows = _binary_rows(buf)
    return {
        "source": _column(rows, 0, ">i8").astype(np.int64),
        "target": _column(rows, 1, ">i8").astype(np.int64),
        "count": _column(rows, 2, ">i4").astype(np.int32),
        "nofollow": _column(rows, 3, "u1").astype(bool),
    }


def _decode_redirects(buf: bytes | bytearray) -> dict[str, np.ndarray]:
    rows = _binary_rows(buf)
    return {
        "source": _column(rows, 0, ">i8").astype(np.int64),
        "target": _column(rows, 1, ">i8").astype(np.int64),
    }


_Nodes = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]  # hash, status, discovered, url


def _decode_packed_nodes(buf: bytes | bytearray) -> _Nodes | None:
    rows = _binary_rows(buf)
    hashes = _column(rows, 0, ">i8").astype(np.int64)
    status = _column(rows, 1, ">i4").astype(np.int32)
    discovered = _column(rows, 2, ">i2").astype(np.int8)
    urls: list[str] = []
    for row in rows:
        urls.extend((row[3] or b"").decode("utf-8").split("\n"))
    # Splitting never loses a URL; a URL with a newline in it adds one part.
    if len(urls) != len(hashes):
        return None  # a URL with a newline in it
    return hashes, status, discovered, urls


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_TEXT_ESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _decode_nodes(text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not text:
        return np.empty(0, np.int64), np.empty(0, np.int32), []
    # Rows end with "\n" and fields are separated by "\t" (both escaped inside
    # values), so one split gives hash, status, url, hash, status, url, ...
    flat = text[:-1].replace("\n", "\t").split("\t")
    if len(flat) % 3:
        raise GraphBuildFailed("The nodes COPY stream has rows of an unexpected shape.")
    hashes = np.array(flat[0::3]).astype(np.int64)
    status = np.array(flat[1::3]).astype(np.int32)
    urls = flat[2::3]
    if "\\" in text:
        urls = [_unescape(u) for u in urls]
    return hashes, status, urls


def _with_discovered(nodes: tuple[np.ndarray, np.ndarray, list[str]],
                     buf: bytes | bytearray) -> _Nodes:
    """The rows read's nodes with their discovery codes, matched by hash."""
    rows = _binary_rows(buf)
    hashes, codes = _column(rows, 0, ">i8").astype(np.int64), _column(rows, 1, ">i2")
    order = np.argsort(hashes, kind="stable")
    found = np.searchsorted(hashes[order], nodes[0])
    if not _found(hashes[order], found, nodes[0]):
        raise GraphBuildFailed("A node is missing from the discovery codes.")
    return nodes[0], nodes[1], codes[order][found].astype(np.int8), nodes[2]


def _copy_out(conn: psycopg.Connection, query: str | sql.Composable, params: dict,
              into: bytearray) -> float:
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for chunk in copy:
            into += chunk
    return time.perf_counter() - started


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in `sorted_keys`; runs of equal keys are looked up once.

    Links come out of the table grouped by source page, so the sources collapse
    to one lookup per page.
    """
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    if len(starts) * 2 > len(keys):
        return np.searchsorted(sorted_keys, keys)
    found = np.searchsorted(sorted_keys, keys[starts])
    return np.repeat(found, np.diff(np.append(starts, len(keys))))


class _Collision(Exception):
    """Two distinct URLs hashed to the same 64-bit value with this seed."""


def _found(node_hash: np.ndarray, index: np.ndarray, keys: np.ndarray) -> bool:
    """True when every key is at its looked-up index of `node_hash`."""
    if not len(keys):
        return True
    if not len(node_hash):
        return False
    return bool((node_hash[np.minimum(index, len(node_hash) - 1)] == keys).all())


def _map(rows: dict[str, np.ndarray], redirects: dict[str, np.ndarray],
         nodes: _Nodes,
         timings: dict[str, float]) -> LinkTable | None:
    """Node ids for the link and redirect endpoints; None when one is not among the nodes."""
    node_hash, status, discovered, urls = nodes
    order = np.argsort(node_hash, kind="stable")
    node_hash = node_hash[order]
    if len(node_hash) > 1 and (node_hash[1:] == node_hash[:-1]).any():
        raise _Collision
    source_hash, target_hash = rows["source"], rows["target"]
    with ThreadPoolExecutor(max_workers=1) as pool:  # numpy releases the GIL here
        target_job = pool.submit(_lookup, node_hash, target_hash)
        source = _lookup(node_hash, source_hash)
        target = target_job.result()
    hop_source = np.searchsorted(node_hash, redirects["source"])
    hop_target = np.searchsorted(node_hash, redirects["target"])
    if not (_found(node_hash, source, source_hash) and _found(node_hash, target, target_hash)
            and _found(node_hash, hop_source, redirects["source"])
            and _found(node_hash, hop_target, redirects["target"])):
        return None
    return LinkTable(
        urls=[urls[i] for i in order.tolist()],
        status=status[order],
        discovered=discovered[order],
        source=source.astype(np.int64),
        target=target.astype(np.int64),
        count=rows["count"],
        nofollow=rows["nofollow"],
        redirect_source=hop_source.astype(np.int64),
        redirect_target=hop_target.astype(np.int64),
        timings=timings,
    )


def _read_once(conninfo: str, jobs: list[uuid.UUID], seed: int) -> LinkTable | None:
    timings: dict[str, float] = {}
    params = {"jobs": jobs, "seed": seed}
    edges_buf, nodes_buf, redirects_buf = bytearray(), bytearray(), bytearray()
    # Two connections read at once (Postgres runs one backend per connection, so
    # the links and the nodes queries use both cores), in one snapshot.
    with psycopg.connect(conninfo, autocommit=True) as first, \
            psycopg.connect(conninfo, autocommit=True) as second:
        first.execute(_BEGIN)
        first.execute(_SET_WORK_MEM)
        snapshot = first.execute("SELECT pg_export_snapshot()").fetchone()[0]
        second.execute(_BEGIN)
        second.execute("SET TRANSACTION SNAPSHOT %s" % _quote(snapshot))  # noqa: S608,UP031
        second.execute(_SET_WORK_MEM)
        with ThreadPoolExecutor(max_workers=1) as pool:
            nodes_job = pool.submit(_copy_out, second, _NODES_FAST_COPY, params, nodes_buf)
            timings["read_links"] = _copy_out(first, _EDGES_COPY, params, edges_buf)
            timings["read_redirects"] = _copy_out(first, _REDIRECTS_COPY, params,
                                                  redirects_buf)
            timings["read_nodes"] = nodes_job.result()
        first.execute("ROLLBACK")
        started = time.perf_counter()
        rows = _decode_edges(edges_buf)
        del edges_buf
        redirects = _decode_redirects(redirects_buf)
        nodes = _decode_packed_nodes(nodes_buf)
        try:
            table = _map(rows, redirects, nodes, timings) if nodes is not None else None
            if table is None:
                # A link source that is not a stored page, or a URL with a newline:
                # every endpoint, read in the same snapshot.
                nodes_buf = bytearray()
                timings["read_nodes_all"] = _copy_out(second, _NODES_COPY, params, nodes_buf)
                nodes = _decode_packed_nodes(nodes_buf)
                if nodes is None:
                    nodes_buf = bytearray()
                    timings["read_nodes_rows"] = _copy_out(second, _NODES_ROWS_COPY, params,
                                                           nodes_buf)
                    codes_buf = bytearray()
                    timings["read_nodes_discovered"] = _copy_out(second, _DISCOVERED_COPY,
                                                                 params, codes_buf)
                    nodes = _with_discovered(_decode_nodes(nodes_buf.decode("utf-8")),
                                             codes_buf)
                table = _map(rows, redirects, nodes, timings)
        except _Collision:
            return None
        finally:
            second.execute("ROLLBACK")
    if table is None:
        raise GraphBuildFailed("A link or redirect endpoint is missing from the node list.")
    timings["decode"] = time.perf_counter() - started
    return table


def _quote(value: str) -> str:
    # A snapshot id is hex digits and dashes; SET TRANSACTION SNAPSHOT takes no parameter.
    if not all(c in "0123456789ABCDEFabcdef-" for c in value):
        raise GraphBuildFailed(f"Unexpected snapshot id {value!r}.")
    return f"'{value}'"


def read_links(conninfo: str, job_ids: Sequence[uuid.UUID | str]) -> LinkTable:
    """Read the links and pages of `job_ids` into a `LinkTable`.

    Args:
        conninfo: a libpq connection string (two connections are opened).
        job_ids: the crawl jobs whose links make up the graph.
    """
    jobs = [uuid.UUID(str(j)) for j in job_ids]
    for seed in range(_MAX_SEEDS):
        table = _read_once(conninfo, jobs, seed)
        if table is not None:
            table.timings["hash_seed"] = seed
            table.unique_pairs = len(set(jobs)) == 1
            return table
    raise GraphBuildFailed(
        f"URL hashes collided with {_MAX_SEEDS} different seeds.",
        hint="This should not happen; report it with the job id.",
    )
