"""The storage pipeline: validated items, buffered, written to PostgreSQL in batches.

Switch it on with ``ITEM_PIPELINES = {"crawler.pipelines.StoragePipeline": 900}``
(on in `crawler.settings`); it needs a job id (spider argument ``job_id`` or
``CRAWLGRAPH_JOB_ID``) and turns itself off without one. Settings:
``CRAWLGRAPH_DATABASE_URL``, ``CRAWLGRAPH_BATCH_SIZE``,
``CRAWLGRAPH_FLUSH_SECONDS``, ``CRAWLGRAPH_BUFFER_MAX_ROWS``,
``CRAWLGRAPH_RETRY_MAX_SECONDS``, ``CRAWLGRAPH_STORAGE_WRITERS`` (connections
writing batches side by side, default 2).

Every item is validated (`crawler.pipelines.rows`) and appended to the open
batch. A batch is written when it has ``BATCH_SIZE`` rows or its first row is
``FLUSH_SECONDS`` old, and on close, by `PostgresStore` in worker threads
(the reactor never waits for the database). An invalid item goes straight to
`dead_letters` with the batch.

**Acknowledgement.** Every row gets a sequence number when `process_item`
appends it; `committed` is the highest number up to which every row is
committed (or in `dead_letters`), and listeners (`add_commit_listener`) hear
when it moves. Scrapy's scraper runs every item of a response through the
pipelines before the engine drops the request from its in-progress set; the
frontier's scheduler then notes `commit_barrier()` (the rows appended so far,
which include that response's) and acknowledges the lease once `committed`
has reached it (`crawler.frontier.scheduler`, which finds the pipeline with
`StoragePipeline.for_crawler(crawler)`). So a lease is acknowledged only
after everything its response produced is committed, whatever spider yielded
the items; a worker that dies before leaves the lease to expire and the
request to be fetched again (the writes are idempotent). `process_item` itself
does not wait: a response leaves the scraper at once, and memory stays bounded
by the backpressure below.

**PostgreSQL down.** A batch that cannot be written is retried with
exponential backoff (up to ``RETRY_MAX_SECONDS``) and nothing is dropped; new
items keep filling the buffer, and above ``BUFFER_MAX_ROWS`` buffered rows the
engine is paused (no new requests leave the frontier) until the backlog is
written.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scrapy.exceptions import NotConfigured

from crawler.pipelines.errors import StorageUnavailable
from crawler.pipelines.rows import Kind, Row, RowError, to_row
from crawler.pipelines.store import PostgresStore, WriteResult
from crawler.scrapyinternals import wake_engine

logger = logging.getLogger(__name__)
_ATTR = "_crawlgraph_storage"


class _Batch:
    """Rows committed together; `end` is the sequence number of its last row."""

    __slots__ = ("dead", "done", "end", "rows", "started")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.dead: list[tuple[Kind, str, str]] = []
        self.started = 0.0
        self.end = 0
        self.done = False

    def __len__(self) -> int:
        return len(self.rows) + len(self.dead)


class StoragePipeline:
    """Stores `Page`, `Link` and any other item of a job; see the module docstring."""

    def __init__(
        self,
        database_url: str,
        job_id: str,
        *,
        batch_size: int = 5000,
        flush_seconds: float = 1.0,
        buffer_max_rows: int = 50_000,
        retry_max_seconds: float = 10.0,
        writers: int = 2,
        crawler: Any = None,
    ) -> None:
        # Several connections write batches side by side: one batch's commit
        # (a WAL flush) overlaps with the next one's COPY.
        self.stores = [PostgresStore(database_url, job_id) for _ in range(max(1, writers))]
        self.job_id = job_id
        self.batch_size = max(1, batch_size)
        self.flush_seconds = flush_seconds
        self.buffer_max_rows = max(self.batch_size, buffer_max_rows)
        self.retry_max_seconds = retry_max_seconds
        self.crawler = crawler
        self._stats = crawler.stats if crawler is not None else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._open: _Batch | None = None  # filling up
        self._ready: deque[_Batch] = deque()  # full or due, in order
        self._unconfirmed: deque[_Batch] = deque()  # closed, in order, not all committed
        self._listeners: list[Callable[[], None]] = []
        self.appended = 0  # sequence number of the last row appended
        self.committed = 0  # every row up to this number is committed
        self._buffered = 0  # rows in all batches not committed yet
        self._idle: list[PostgresStore] = list(self.stores)
        self._writers: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._paused_engine = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> StoragePipeline:
        settings = crawler.settings
        spider = crawler.spider
        job_id = getattr(spider, "job_id", None) or settings.get("CRAWLGRAPH_JOB_ID")
        if not job_id:
            raise NotConfigured("StoragePipeline needs a job_id spider argument")
        url = settings.get("CRAWLGRAPH_DATABASE_URL")
        if not url:
            raise NotConfigured("StoragePipeline needs CRAWLGRAPH_DATABASE_URL or DATABASE_URL")
        pipeline = cls(
            url,
            str(job_id),
            batch_size=settings.getint("CRAWLGRAPH_BATCH_SIZE", 5000),
            flush_seconds=settings.getfloat("CRAWLGRAPH_FLUSH_SECONDS", 1.0),
            buffer_max_rows=settings.getint("CRAWLGRAPH_BUFFER_MAX_ROWS", 50_000),
            retry_max_seconds=settings.getfloat("CRAWLGRAPH_RETRY_MAX_SECONDS", 10.0),
            writers=settings.getint("CRAWLGRAPH_STORAGE_WRITERS", 2),
            crawler=crawler,
        )
        setattr(crawler, _ATTR, pipeline)
        return pipeline

    @classmethod
    def for_crawler(cls, crawler: Any) -> StoragePipeline | None:
        """The crawler's storage pipeline, or None if it is off (no job id, no database)."""
        return getattr(crawler, _ATTR, None)

    @property
    def buffered(self) -> int:
        """Rows waiting for a commit."""
        return self._buffered

    def commit_barrier(self) -> int:
        """The sequence number of the last row appended so far."""
        return self.appended

    def add_commit_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) whenever `committed` moves."""
        self._listeners.append(callback)

    def flush_now(self) -> None:
        """Write the open batch without waiting for FLUSH_SECONDS (the crawl is idle)."""
        if self._open is not None and len(self._open) and self._wake is not None:
            self._close_batch()
            self._wake.set()

    async def wait_committed(self, seq: int) -> None:
        """Wait until every row up to `seq` is committed."""
        if self.committed >= seq:
            return
        done = self._loop.create_future()

        def check() -> None:
            if self.committed >= seq and not done.done():
                done.set_result(None)

        self.add_commit_listener(check)
        try:
            await done
        finally:
            self._listeners.remove(check)

    async def open_spider(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(len(self.stores),
                                            thread_name_prefix="crawlgraph-storage")
        self._open = _Batch()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run())

    def process_item(self, item: Any) -> Any:
        batch = self._open
        try:
            batch.rows.append(to_row(item))
        except RowError as exc:
            batch.dead.append((exc.kind, exc.payload, str(exc)))
        self.appended += 1
        batch.end = self.appended
        self._buffered += 1
        size = len(batch)
        if size == 1:
            batch.started = self._loop.time()
            self._wake.set()
        elif size >= self.batch_size:
            self._close_batch()
            self._wake.set()
        if not self._paused_engine and self._buffered >= self.buffer_max_rows:
            self._pause_engine()
        return item

    def _close_batch(self) -> None:
        self._ready.append(self._open)
        self._unconfirmed.append(self._open)
        self._open = _Batch()

    def _confirm(self, batch: _Batch) -> None:
        """Mark `batch` done and move the watermark over every done batch in order."""
        batch.done = True
        moved = False
        while self._unconfirmed and self._unconfirmed[0].done:
            self.committed = self._unconfirmed.popleft().end
            moved = True
        if moved:
            for listener in list(self._listeners):
                listener()

    async def close_spider(self) -> None:
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            for store in self.stores:
                await self._loop.run_in_executor(self._executor, store.close)
            self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        while True:
            while self._ready and self._idle:
                task = self._loop.create_task(self._write(self._ready.popleft(),
                                                          self._idle.pop()))
                self._writers.add(task)
                task.add_done_callback(self._writers.discard)
            batch = self._open
            if not len(batch) or self._ready:  # nothing to time, or no writer free
                busy = len(self._idle) < len(self.stores)
                if self._closing and not len(batch) and not self._ready and not busy:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            timeout = batch.started + self.flush_seconds - self._loop.time()
            if timeout > 0 and not self._closing:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
                if batch is self._open and not self._closing and (
                    batch.started + self.flush_seconds > self._loop.time()
                ):
                    continue  # woken early (a new row or a full batch): look again
            if batch is self._open:
                self._close_batch()

    async def _write(self, batch: _Batch, store: PostgresStore) -> None:
        rows = len(batch)
        delay = 0.2
        try:
            while True:
                try:
                    result = await self._loop.run_in_executor(
                        self._executor, self._write_chunks, batch, store
                    )
                    break
                except StorageUnavailable as exc:
                    self._inc("storage/retries")
                    logger.warning("storage: %s; retrying %d rows in %.1f s",
                                   exc, len(batch), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_max_seconds)
                except Exception as exc:  # noqa: BLE001 - a store error must not stop the crawl
                    # Counted as done so that the crawl goes on; the error is logged
                    # with the rows it lost.
                    logger.error("storage: batch of %d rows failed, not stored: %s",
                                 len(batch), exc)
                    self._inc("storage/failed_rows", len(batch))
                    return
            self._inc("storage/rows", result.stored)
            self._inc("storage/batches")
            if result.dead:
                self._inc("storage/dead_letters", len(result.dead))
        finally:
            self._confirm(batch)
            self._idle.append(store)
            self._wake.set()
            self._buffered -= rows
            if self._paused_engine and self.buffered < self.buffer_max_rows // 2:
                self._unpause_engine()

    def _write_chunks(self, batch: _Batch, store: PostgresStore) -> WriteResult:
        """Runs in the storage thread: one transaction per BATCH_SIZE rows."""
        total = WriteResult()
        while batch.rows or batch.dead:
            chunk = batch.rows[:self.batch_size]
            result = store.write(chunk, batch.dead)
            # Written chunks leave the batch, so that a retry after a later chunk
            # failed rewrites nothing (and writes no dead letter twice).
            batch.rows, batch.dead = batch.rows[len(chunk):], []
            total.stored += result.stored
            total.dead += result.dead
        return total

    def _pause_engine(self) -> None:
        # Items arrive only while the crawl runs, so a crawler's engine is set by
        # then; a pipeline made without a crawler (a unit test) has none to pause.
        if self.crawler is None:
            return
        logger.warning("storage: %d rows buffered, pausing the crawl until they are written",
                       self.buffered)
        self._inc("storage/backpressure_pauses")
        self.crawler.engine.pause()
        self._paused_engine = True

    def _unpause_engine(self) -> None:
        logger.info("storage: backlog written, resuming the crawl")
        self.crawler.engine.unpause()
        self._paused_engine = False
        # The engine looks for requests again at its next tick; make that now.
        wake_engine(self.crawler)

    def _inc(self, key: str, count: int = 1) -> None:
        if self._stats is not None:
            self._stats.inc_value(key, count)
