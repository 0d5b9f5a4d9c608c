"""Read the links and pages of one or more crawl jobs out of Postgres into numpy arrays.

Two binary COPY statements run at once on two connections that share one
exported snapshot (read-only REPEATABLE READ), so they see the same data:

* the links: the 64-bit ids of their URLs as stored (`urls`, the server's
  `hashtextextended` of the text), the columns packed server-side into bytea values that
  are big-endian arrays, decoded by `np.frombuffer` — no Python loop per link,
  and not one protocol message per link either;
* the nodes: each distinct URL with its id, best crawl status and how the
  crawl first reached it (a code of `DISCOVERY`), for the stored pages, both
  ends of every redirect, the canonical URLs pages declare and every link
  endpoint (`urls`), packed
  the same way with the URLs joined by newlines and split by `str.split` (a C
  loop).

After the links, the first connection reads the redirects the same way: one
(URL, where it led) pair per URL that redirected, from `redirects` (one row
per hop) and, for a URL without one there, from `pages` (the URL asked for
and the final URL, which is all a crawl stored before `redirects` existed);
then the canonicals: one (page, canonical URL it declares) pair per page
that declares one (`pages.canonical_url`, on the page's final URL).

Edge and redirect endpoints are matched to nodes with `np.searchsorted`. Two
distinct URLs with the same 64-bit id fail the read (the node ids would not be
unique); the storage pipeline refuses them within a job already.
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

from graphs.copydecode import (
    Nodes,
    binary_rows,
    column,
    decode_edges,
    decode_nodes,
    decode_packed_nodes,
    decode_pairs,
)
from graphs.errors import GraphBuildFailed
from graphs.readsql import (
    BEGIN,
    CANONICALS_COPY,
    DISCOVERED_COPY,
    EDGES_COPY,
    NODES_COPY,
    NODES_ROWS_COPY,
    REDIRECTS_COPY,
    SET_WORK_MEM,
)

#: The values of a node's `discovered` code (`pages.discovered`, in the order of
#: the array the node queries look it up in; "" for none).
DISCOVERY = ("", "start", "link", "sitemap")

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
    # One pair per page that declares a canonical URL: node ids of the page and of it.
    canonical_source: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    canonical_target: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
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

    @property
    def canonical_count(self) -> int:
        return len(self.canonical_source)


def _with_discovered(nodes: tuple[np.ndarray, np.ndarray, list[str]],
                     buf: bytes | bytearray) -> Nodes:
    """The rows read's nodes with their discovery codes, matched by hash."""
    rows = binary_rows(buf)
    hashes, codes = column(rows, 0, ">i8").astype(np.int64), column(rows, 1, ">i2")
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


def _found(node_hash: np.ndarray, index: np.ndarray, keys: np.ndarray) -> bool:
    """True when every key is at its looked-up index of `node_hash`."""
    if not len(keys):
        return True
    if not len(node_hash):
        return False
    return bool((node_hash[np.minimum(index, len(node_hash) - 1)] == keys).all())


def _map(rows: dict[str, np.ndarray], redirects: dict[str, np.ndarray],
         canonicals: dict[str, np.ndarray], nodes: Nodes,
         timings: dict[str, float]) -> LinkTable | None:
    """Node ids for the link, redirect and canonical endpoints; None when one is not a node."""
    node_hash, status, discovered, urls = nodes
    order = np.argsort(node_hash, kind="stable")
    node_hash = node_hash[order]
    if len(node_hash) > 1 and (node_hash[1:] == node_hash[:-1]).any():
        raise GraphBuildFailed(
            "Two URLs of the graph share one 64-bit id.",
            hint="At a million URLs the odds are about 3 in 100 million; report it with "
                 "the job id.")
    source_hash, target_hash = rows["source"], rows["target"]
    with ThreadPoolExecutor(max_workers=1) as pool:  # numpy releases the GIL here
        target_job = pool.submit(_lookup, node_hash, target_hash)
        source = _lookup(node_hash, source_hash)
        target = target_job.result()
    ends = [redirects["source"], redirects["target"], canonicals["source"], canonicals["target"]]
    found = [np.searchsorted(node_hash, keys) for keys in ends]
    if not (_found(node_hash, source, source_hash) and _found(node_hash, target, target_hash)
            and all(_found(node_hash, index, keys)
                    for index, keys in zip(found, ends, strict=True))):
        return None
    hop_source, hop_target, canonical_source, canonical_target = found
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
        canonical_source=canonical_source.astype(np.int64),
        canonical_target=canonical_target.astype(np.int64),
        timings=timings,
    )


def read_links(conninfo: str, job_ids: Sequence[uuid.UUID | str]) -> LinkTable:
    """Read the links and pages of `job_ids` into a `LinkTable`.

    Args:
        conninfo: a libpq connection string (two connections are opened).
        job_ids: the crawl jobs whose links make up the graph.
    """
    jobs = [uuid.UUID(str(j)) for j in job_ids]
    timings: dict[str, float] = {}
    params = {"jobs": jobs}
    edges_buf, nodes_buf, redirects_buf = bytearray(), bytearray(), bytearray()
    canonicals_buf = bytearray()
    # Two connections read at once (Postgres runs one backend per connection, so
    # the links and the nodes queries use both cores), in one snapshot.
    with psycopg.connect(conninfo, autocommit=True) as first, \
            psycopg.connect(conninfo, autocommit=True) as second:
        first.execute(BEGIN)
        first.execute(SET_WORK_MEM)
        snapshot = first.execute("SELECT pg_export_snapshot()").fetchone()[0]
        second.execute(BEGIN)
        second.execute("SET TRANSACTION SNAPSHOT %s" % _quote(snapshot))  # noqa: S608,UP031
        second.execute(SET_WORK_MEM)
        with ThreadPoolExecutor(max_workers=1) as pool:
            nodes_job = pool.submit(_copy_out, second, NODES_COPY, params, nodes_buf)
            timings["read_links"] = _copy_out(first, EDGES_COPY, params, edges_buf)
            timings["read_redirects"] = _copy_out(first, REDIRECTS_COPY, params,
                                                  redirects_buf)
            timings["read_canonicals"] = _copy_out(first, CANONICALS_COPY, params,
                                                   canonicals_buf)
            timings["read_nodes"] = nodes_job.result()
        first.execute("ROLLBACK")
        started = time.perf_counter()
        rows = decode_edges(edges_buf)
        del edges_buf
        redirects = decode_pairs(redirects_buf)
        canonicals = decode_pairs(canonicals_buf)
        nodes = decode_packed_nodes(nodes_buf)
        try:
            if nodes is None:
                # A URL with a newline: the nodes as rows, in the same snapshot.
                nodes_buf = bytearray()
                timings["read_nodes_rows"] = _copy_out(second, NODES_ROWS_COPY, params,
                                                       nodes_buf)
                codes_buf = bytearray()
                timings["read_nodes_discovered"] = _copy_out(second, DISCOVERED_COPY,
                                                             params, codes_buf)
                nodes = _with_discovered(decode_nodes(nodes_buf.decode("utf-8")), codes_buf)
            table = _map(rows, redirects, canonicals, nodes, timings)
        finally:
            second.execute("ROLLBACK")
    if table is None:
        raise GraphBuildFailed(
            "A link, redirect or canonical endpoint is missing from the node list.")
    timings["decode"] = time.perf_counter() - started
    table.unique_pairs = len(set(jobs)) == 1
    return table


def _quote(value: str) -> str:
    # A snapshot id is hex digits and dashes; SET TRANSACTION SNAPSHOT takes no parameter.
    if not all(c in "0123456789ABCDEFabcdef-" for c in value):
        raise GraphBuildFailed(f"Unexpected snapshot id {value!r}.")
    return f"'{value}'"
