"""Read the links and pages of one or more crawl jobs out of Postgres into numpy arrays.

Two COPY statements run at once on two connections that share one exported
snapshot (read-only REPEATABLE READ), so they see the same data:

* the links, as fixed-width binary rows `(hash(source), hash(target), count,
  nofollow)`: each URL is reduced to a 64-bit hash by the server
  (`hashtextextended`), so every row has the same size and the whole stream is
  decoded by one `np.frombuffer` with a structured dtype, without a Python
  loop per link;
* the nodes, one row per distinct URL with its hash and crawl status, in text
  format, split by `str.split` (a C loop) — the only per-URL work.

Edge endpoints are then matched to nodes with `np.searchsorted`. Two distinct
URLs with the same 64-bit hash are detected (the node hashes would not be
unique) and the read is repeated with another hash seed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import psycopg

from graphs.errors import GraphBuildFailed

_EDGES_COPY = """
COPY (
    SELECT hashtextextended(source_url, %(seed)s), hashtextextended(target_url, %(seed)s),
           count, nofollow
    FROM links WHERE job_id = ANY(%(jobs)s)
) TO STDOUT (FORMAT BINARY)
"""

# Every URL that is a link endpoint or a stored page (its request URL and,
# after a redirect, its final URL), with the best crawl status seen (-1: not
# fetched).
_NODES_COPY = """
COPY (
    SELECT hashtextextended(url, %(seed)s), max(status), url FROM (
        SELECT source_url AS url, -1 AS status FROM links WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT target_url, -1 FROM links WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT url, status FROM pages WHERE job_id = ANY(%(jobs)s)
        UNION ALL
        SELECT final_url, status FROM pages
        WHERE job_id = ANY(%(jobs)s) AND final_url <> url AND final_url ~ '^https?://'
    ) AS endpoints
    GROUP BY url
) TO STDOUT
"""

# Grouping a few million URLs fits in memory with this; the default (4 MB)
# would spill the hash table to disk.
_SET_WORK_MEM = "SET LOCAL work_mem = '512MB'"
_BEGIN = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

_HEADER = b"PGCOPY\n\xff\r\n\x00"
# One link row of the binary COPY: field count, then (length, value) per field.
_EDGE_ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("len_source", ">i4"), ("source", ">i8"),
        ("len_target", ">i4"), ("target", ">i8"),
        ("len_count", ">i4"), ("count", ">i4"),
        ("len_nofollow", ">i4"), ("nofollow", "u1"),
    ]
)
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
    # True when no (source, target) pair occurs twice (one job: the links' primary key).
    unique_pairs: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def node_count(self) -> int:
        return len(self.urls)

    @property
    def link_count(self) -> int:
        return len(self.source)


def _decode_edges(buf: bytes | bytearray) -> np.ndarray:
    if len(buf) < 19 or bytes(buf[:11]) != _HEADER:
        raise GraphBuildFailed("The links COPY stream has no binary COPY header.")
    ext = int.from_bytes(buf[15:19], "big")
    start = 19 + ext
    body = len(buf) - start - 2  # trailer: int16 -1
    if body % _EDGE_ROW.itemsize:
        raise GraphBuildFailed("The links COPY stream has rows of an unexpected size.")
    rows = np.frombuffer(buf, dtype=_EDGE_ROW, count=body // _EDGE_ROW.itemsize, offset=start)
    if len(rows) and not (rows["nfields"] == 4).all():
        raise GraphBuildFailed("The links COPY stream has rows of an unexpected shape.")
    return rows


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


def _copy_out(conn: psycopg.Connection, query: str, params: dict, into: bytearray) -> float:
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


def _read_once(conninfo: str, jobs: list[uuid.UUID], seed: int) -> LinkTable | None:
    timings: dict[str, float] = {}
    params = {"jobs": jobs, "seed": seed}
    edges_buf, nodes_buf = bytearray(), bytearray()
    # Two connections read at once (Postgres runs one backend per connection, so
    # the links scan and the nodes aggregation use both cores), in one snapshot.
    with psycopg.connect(conninfo, autocommit=True) as first, \
            psycopg.connect(conninfo, autocommit=True) as second:
        first.execute(_BEGIN)
        first.execute(_SET_WORK_MEM)
        snapshot = first.execute("SELECT pg_export_snapshot()").fetchone()[0]
        second.execute(_BEGIN)
        second.execute("SET TRANSACTION SNAPSHOT %s" % _quote(snapshot))  # noqa: S608,UP031
        second.execute(_SET_WORK_MEM)
        with ThreadPoolExecutor(max_workers=1) as pool:
            nodes_job = pool.submit(_copy_out, second, _NODES_COPY, params, nodes_buf)
            timings["read_links"] = _copy_out(first, _EDGES_COPY, params, edges_buf)
            timings["read_nodes"] = nodes_job.result()
        first.execute("ROLLBACK")
        second.execute("ROLLBACK")
    started = time.perf_counter()
    rows = _decode_edges(edges_buf)
    node_hash, status, urls = _decode_nodes(nodes_buf.decode("utf-8"))
    del nodes_buf
    order = np.argsort(node_hash, kind="stable")
    node_hash = node_hash[order]
    if len(node_hash) > 1 and (node_hash[1:] == node_hash[:-1]).any():
        return None  # two URLs share a hash with this seed
    status = status[order]
    urls = [urls[i] for i in order.tolist()]
    source_hash = rows["source"].astype(np.int64)
    target_hash = rows["target"].astype(np.int64)
    with ThreadPoolExecutor(max_workers=1) as pool:  # numpy releases the GIL here
        target_job = pool.submit(_lookup, node_hash, target_hash)
        source = _lookup(node_hash, source_hash)
        target = target_job.result()
    if len(rows):
        last = len(node_hash) - 1
        found = (node_hash[np.minimum(source, last)] == source_hash)
        found &= (node_hash[np.minimum(target, last)] == target_hash)
        if not found.all():
            raise GraphBuildFailed("A link endpoint is missing from the node list.")
    table = LinkTable(
        urls=urls,
        status=status,
        source=source.astype(np.int64),
        target=target.astype(np.int64),
        count=rows["count"].astype(np.int32),
        nofollow=rows["nofollow"].astype(bool),
        timings=timings,
    )
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
