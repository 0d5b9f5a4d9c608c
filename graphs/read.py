"""Read the links and pages of one or more crawl jobs out of Postgres into numpy arrays.

Three connections read at once, each in a thread, in one exported snapshot
(read-only REPEATABLE READ), so they see the same data; every statement is a
binary COPY whose columns the server packs into a few rows of bytea values
that are big-endian arrays, decoded by `np.frombuffer` (`graphs.copydecode`):
no Python loop per link or node, and not one protocol message per row either.

* The first connection reads the links: a row of `outlinks` per source page,
  its id and its targets' ids as stored (`urls`: the server's
  `hashtextextended` of each URL), counts and nofollow flags.
* The second reads `urls` as stored (id, URL; one row per URL and job, sorted
  by id once here), then the redirects: one (URL, where it led) pair of ids per
  URL that redirected, from `redirects` (one row per hop) and, for a URL
  without one there, from `pages` (the URL asked for and the final URL, which
  is all a crawl stored before `redirects` existed); then the canonicals: one
  (page, canonical URL it declares) pair per page that declares one
  (`pages.canonical_url`, on the page's final URL). The links take longest,
  so the small reads go here.
* The third reads a row for each stored page, final URL, redirect end and
  canonical URL (id, crawl status, how the crawl first reached it, URL) and
  merges those rows into the sorted urls: one node per id, sorted by id
  (`graphs.readnodes`). Neither is grouped by URL on the server.

The URLs of a node stream are joined by newlines and split by `str.split` (a
C loop); a URL that contains a newline makes the counts disagree, and that
stream is read again as text rows. Link endpoints are `urls` rows, so the
links are matched to the urls' entries (`graphs.idindex`: by the ids' top
bits rather than a binary search, two halves of the targets at once) while
the third connection still reads and merges; a link's source is looked up
once per `outlinks` row and repeated for its links. A link end with no
`urls` row (a database written by hand) is looked up among all the nodes.
Redirect and canonical ends are looked up among the nodes. Two distinct URLs
with the same 64-bit id fail the read (`GraphBuildFailed`; the storage
pipeline refuses them within a job already), and so does an endpoint that is
no node. The read trusts a `urls` row's id to be the hash of its URL, as the
storage pipeline and the migrations write it.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from graphs.copydecode import decode_edges, decode_packed, decode_pairs, decode_text_rows
from graphs.errors import GraphBuildFailed
from graphs.idindex import IdIndex
from graphs.readnodes import Nodes, Part, merge_nodes
from graphs.readsql import (
    BEGIN,
    CANONICALS_COPY,
    EDGES_COPY,
    ENDPOINTS_COPY,
    ENDPOINTS_ROWS_COPY,
    REDIRECTS_COPY,
    SET_NO_SORT,
    SET_SORT,
    SET_WORK_MEM,
    URLS_COPY,
    URLS_ROWS_COPY,
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


def _copy_out(conn: psycopg.Connection, query: str | sql.Composable, params: dict,
              into: bytearray) -> float:
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for chunk in copy:
            into += chunk
    return time.perf_counter() - started


_URL_PART = (">i8",)  # id
_ENDPOINT_PART = (">i8", ">i4", ">i2")  # id, status, discovery code


def _read_part(conn: psycopg.Connection, params: dict, packed: sql.Composable,
               rows: sql.Composable, dtypes: tuple[str, ...], name: str,
               timings: dict[str, float]) -> tuple[list[np.ndarray], list[str]]:
    """One part of the nodes, on a connection of its own whose transaction it ends:
    packed, or as text rows when a URL has a newline in it."""
    try:
        buf = bytearray()
        timings[f"read_{name}"] = _copy_out(conn, packed, params, buf)
        part = decode_packed(buf, dtypes)
        if part is None:
            buf = bytearray()
            taken = _copy_out(conn, rows, params, buf)
            timings["read_nodes_rows"] = timings.get("read_nodes_rows", 0.0) + taken
            native = [np.dtype(dtype).newbyteorder("=") for dtype in dtypes]
            part = decode_text_rows(buf.decode("utf-8"), native)
    finally:
        conn.execute("ROLLBACK")
    return part


def _read_urls(conn: psycopg.Connection, params: dict, timings: dict[str, float]
               ) -> tuple[Part, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The rows of `urls`, sorted by id; then the redirects and the canonicals (this
    connection is done long before the links')."""
    started = time.perf_counter()
    redirects_buf, canonicals_buf = bytearray(), bytearray()
    try:
        buf = bytearray()
        timings["read_urls"] = _copy_out(conn, URLS_COPY, params, buf)
        conn.execute(SET_SORT)
        timings["read_redirects"] = _copy_out(conn, REDIRECTS_COPY, params, redirects_buf)
        timings["read_canonicals"] = _copy_out(conn, CANONICALS_COPY, params, canonicals_buf)
        part = decode_packed(buf, _URL_PART)
        del buf
        if part is None:  # a URL with a newline in it
            buf = bytearray()
            conn.execute(SET_NO_SORT)
            taken = _copy_out(conn, URLS_ROWS_COPY, params, buf)
            timings["read_nodes_rows"] = timings.get("read_nodes_rows", 0.0) + taken
            part = decode_text_rows(buf.decode("utf-8"), [np.dtype(np.int64)])
    finally:
        conn.execute("ROLLBACK")
    (ids,), texts = part
    urls = Part.of(ids, texts)
    timings["urls"] = time.perf_counter() - started
    return urls, decode_pairs(redirects_buf), decode_pairs(canonicals_buf)


def _read_nodes(conn: psycopg.Connection, params: dict, urls: Future[tuple[Part, ...]],
                timings: dict[str, float]) -> Nodes:
    """The page, redirect and canonical rows, merged with `urls` once it is read."""
    started = time.perf_counter()
    (ids, status, discovered), texts = _read_part(
        conn, params, ENDPOINTS_COPY, ENDPOINTS_ROWS_COPY, _ENDPOINT_PART, "endpoints",
        timings)
    merging = time.perf_counter()
    nodes = merge_nodes(urls.result()[0], ids, status, discovered, texts)
    timings["merge_nodes"] = time.perf_counter() - merging
    timings["nodes"] = time.perf_counter() - started
    return nodes


def _link_ends(index: IdIndex, edges: dict[str, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The positions of the links' targets and of each row's source in `index`, the
    targets in two halves at once (numpy releases the GIL); None when one is missing."""
    keys = edges["target"]
    target = np.empty(len(keys), dtype=np.int64)
    half = len(keys) // 2
    with ThreadPoolExecutor(max_workers=1) as pool:
        first_half = pool.submit(index.positions, keys[:half], target[:half])
        second_half = index.positions(keys[half:], target[half:])
        row_source = index.positions(edges["row_source"])
        found = first_half.result() is not None and second_half is not None
    return (target, row_source) if found and row_source is not None else None


def _map(edges: dict[str, np.ndarray], redirects: dict[str, np.ndarray],
         canonicals: dict[str, np.ndarray], nodes: Nodes,
         in_urls: tuple[np.ndarray, np.ndarray] | None) -> LinkTable | None:
    """Node ids for the link, redirect and canonical endpoints (the links' from their
    positions `in_urls` when every one was found there); None when one is not a node."""
    others_keys = (redirects["source"], redirects["target"], canonicals["source"],
                   canonicals["target"])
    index = IdIndex(nodes.ids) if in_urls is None or any(map(len, others_keys)) else None
    if in_urls is None:
        ends = _link_ends(index, edges)
    elif nodes.from_urls is None:
        ends = in_urls
    else:
        ends = nodes.from_urls[in_urls[0]], nodes.from_urls[in_urls[1]]
    others = [np.empty(0, np.int64) if index is None else index.positions(keys)
              for keys in others_keys]
    if ends is None or any(found is None for found in others):
        return None
    target, row_source = ends
    hop_source, hop_target, canonical_source, canonical_target = others
    return LinkTable(
        urls=nodes.urls,
        status=nodes.status,
        discovered=nodes.discovered,
        source=np.repeat(row_source, edges["row_links"]),
        target=target,
        count=edges["count"],
        nofollow=edges["nofollow"],
        redirect_source=hop_source,
        redirect_target=hop_target,
        canonical_source=canonical_source,
        canonical_target=canonical_target,
    )


def read_links(conninfo: str, job_ids: Sequence[uuid.UUID | str]) -> LinkTable:
    """Read the links and pages of `job_ids` into a `LinkTable`.

    Args:
        conninfo: a libpq connection string (three connections are opened).
        job_ids: the crawl jobs whose links make up the graph.
    """
    jobs = [uuid.UUID(str(j)) for j in job_ids]
    timings: dict[str, float] = {}
    params = {"jobs": jobs}
    # Three connections read at once (Postgres runs one backend per connection:
    # the links, the urls and the other nodes use every core), in one snapshot.
    with psycopg.connect(conninfo, autocommit=True) as first, \
            psycopg.connect(conninfo, autocommit=True) as second, \
            psycopg.connect(conninfo, autocommit=True) as third:
        first.execute(BEGIN)
        first.execute(SET_WORK_MEM)
        first.execute(SET_NO_SORT)
        snapshot = first.execute("SELECT pg_export_snapshot()").fetchone()[0]
        for conn in (second, third):
            conn.execute(BEGIN)
            conn.execute("SET TRANSACTION SNAPSHOT %s" % _quote(snapshot))  # noqa: S608,UP031
            conn.execute(SET_WORK_MEM)
            conn.execute(SET_NO_SORT)
        with ThreadPoolExecutor(max_workers=2) as pool:
            urls_job = pool.submit(_read_urls, second, params, timings)
            nodes_job = pool.submit(_read_nodes, third, params, urls_job, timings)
            edges_buf = bytearray()
            timings["read_links"] = _copy_out(first, EDGES_COPY, params, edges_buf)
            started = time.perf_counter()
            edges = decode_edges(edges_buf)
            del edges_buf
            timings["decode_links"] = time.perf_counter() - started
            first.execute("ROLLBACK")
            # Link endpoints are `urls` rows: they are looked up there while the
            # other nodes are still read and merged.
            waiting = time.perf_counter()
            urls, redirects, canonicals = urls_job.result()
            timings["wait_urls"] = time.perf_counter() - waiting
            started = time.perf_counter()
            in_urls = _link_ends(IdIndex(urls.ids), edges)
            del urls
            timings["match_links"] = time.perf_counter() - started
            waiting = time.perf_counter()
            nodes = nodes_job.result()
            timings["wait_nodes"] = time.perf_counter() - waiting
    started = time.perf_counter()
    table = _map(edges, redirects, canonicals, nodes, in_urls)
    if table is None:
        raise GraphBuildFailed(
            "A link, redirect or canonical endpoint is missing from the node list.")
    timings["match"] = time.perf_counter() - started
    table.timings = timings
    table.unique_pairs = len(set(jobs)) == 1
    return table


def _quote(value: str) -> str:
    # A snapshot id is hex digits and dashes; SET TRANSACTION SNAPSHOT takes no parameter.
    if not all(c in "0123456789ABCDEFabcdef-" for c in value):
        raise GraphBuildFailed(f"Unexpected snapshot id {value!r}.")
    return f"'{value}'"
