"""WARC archives of a job: every request and response, as they went over the wire.

On for a job with the spider argument ``warc: true`` (``crawlgraph crawl
--warc``); ``CRAWLGRAPH_WARC_ENABLED`` [True] switches the component off
whatever jobs ask. Placed last before the download (960, after the throttle),
so its ``process_response`` sees a response before HTTP decompression (590)
decodes it: the body is archived as served (``Content-Encoding`` kept) with its
headers (``Transfer-Encoding`` dropped: the body is no longer chunked), and the
request as sent. robots.txt fetches go through it too.

Each fetch gives a ``response`` and a ``request`` record (``WARC-Concurrent-To``
the response, payload digests by warcio), written by `crawler.warcfiles` in a
single writer thread, so the reactor never waits on the disk unless more than
64 MiB of bodies are queued (``_MAX_PENDING_BYTES``). Files go to
``CRAWLGRAPH_WARC_DIR`` [the data directory's ``warc/``], one series per
worker, rotated at ``CRAWLGRAPH_WARC_MAX_BYTES`` [1 GB]. Each file is a row of ``warc_files``
(migrations/0017_warc_files.sql) with the node holding it, so the job API
lists the files of every node. When a worker opens, it closes out the
``.open`` files of the job that no live process holds the lock of (a worker
killed before it could close them). A page re-fetched after a worker's death
simply has a second response record. Stats: ``warc/records``, ``warc/files``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from http import HTTPStatus
from io import BytesIO
from pathlib import Path
from typing import Any, Self

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from warcio.statusandheaders import StatusAndHeaders

from core.settings import Settings
from crawler.warcfiles import OPEN_SUFFIX, WarcFiles, close_out

logger = logging.getLogger(__name__)

UPSERT_FILE = """
INSERT INTO warc_files (job_id, name, node, worker, bytes, records, closed_at)
VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)
ON CONFLICT (job_id, name) DO UPDATE
SET bytes = EXCLUDED.bytes, records = EXCLUDED.records, closed_at = EXCLUDED.closed_at
"""
#: Bytes of bodies queued for the writer thread above which a response waits for its write.
_MAX_PENDING_BYTES = 64 << 20


class WarcMiddleware:
    """Downloader middleware archiving each fetch of a ``warc: true`` job."""

    def __init__(self, crawler: Crawler, directory: Path, max_bytes: int) -> None:
        self.crawler = crawler
        self.directory = directory
        self.max_bytes = max_bytes
        self.database_url = crawler.settings.get("CRAWLGRAPH_DATABASE_URL") or None
        self.node = socket.gethostname()
        self.files: WarcFiles | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc")
        self._pending_bytes = 0
        self._bytes_lock = threading.Lock()
        crawler.signals.connect(self._opened, signals.spider_opened)
        crawler.signals.connect(self._closed, signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        s = crawler.settings
        if not s.getbool("CRAWLGRAPH_WARC_ENABLED", True):
            raise NotConfigured("CRAWLGRAPH_WARC_ENABLED is off")
        if not getattr(getattr(crawler.spider, "args", None), "warc", False):
            raise NotConfigured("the job does not ask for WARC files")
        directory = s.get("CRAWLGRAPH_WARC_DIR") or str(Settings.from_env().home / "warc")
        max_bytes = s.getint("CRAWLGRAPH_WARC_MAX_BYTES", 10**9)
        if max_bytes < 1:
            raise NotConfigured("CRAWLGRAPH_WARC_MAX_BYTES must be positive")
        return cls(crawler, Path(directory), max_bytes)

    def _opened(self, spider: Spider) -> None:
        job_id = str(getattr(spider, "job_id", None) or uuid.uuid4())
        scheduler = getattr(self.crawler.engine, "scheduler", None)
        worker = (getattr(scheduler, "worker", None)
                  or f"{self.node}{os.getpid()}{uuid.uuid4().hex[:8]}")
        info = {"software": "crawlgraph (warcio)", "format": "WARC File Format 1.1",
                "hostname": self.node, "isPartOf": job_id}
        self.files = WarcFiles(self.directory, job_id, worker, max_bytes=self.max_bytes,
                               on_file=self._on_file, info=info)
        self._submit(self._close_out_dead)

    async def process_response(self, request: Request, response: Response,
                               spider: Spider) -> Response:
        fetch = (request.method, request.url, list(request.headers.items()), request.body,
                 response.status, response.protocol or "HTTP/1.1",
                 list(response.headers.items()), response.body)
        size = len(request.body) + len(response.body)
        with self._bytes_lock:
            self._pending_bytes += size
        future = self._submit(self._write, fetch)
        future.add_done_callback(lambda _: self._release(size))
        if self._pending_bytes > _MAX_PENDING_BYTES:
            await asyncio.wrap_future(future)
        return response

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._pending_bytes -= size

    def _submit(self, fn: Any, *args: Any) -> Future[None]:
        future = self._executor.submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[None]) -> None:
        if future.exception() is not None:
            logger.error("warc: writing failed: %s", future.exception())
            self.crawler.stats.inc_value("warc/errors")

    async def _closed(self, spider: Spider) -> None:
        if self.files is not None:
            await asyncio.wrap_future(self._executor.submit(self.files.close))
        self._executor.shutdown(wait=True)

    # --- in the writer thread ---------------------------------------------------
    def _write(self, fetch: tuple[Any, ...]) -> None:
        method, url, req_headers, req_body, status, protocol, headers, body = fetch
        assert self.files is not None
        builder = self.files.record_writer()
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        http = StatusAndHeaders(f"{status} {reason}".strip(), _headers(headers), protocol=protocol)
        response = builder.create_warc_record(url, "response", payload=BytesIO(body),
                                              length=len(body), http_headers=http)
        target = re.sub(r"^[a-zA-Z]+://[^/?#]*", "", url.split("#")[0]) or "/"
        sent = _headers(req_headers)
        if not any(k.lower() == "host" for k, _ in sent):
            sent.insert(0, ("Host", re.sub(r"^[a-zA-Z]+://([^/?#]*).*$", r"\1", url)))
        request_http = StatusAndHeaders(f"{method} {target} HTTP/1.1", sent, protocol="",
                                        is_http_request=True)
        concurrent = {"WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID")}
        request_record = builder.create_warc_record(url, "request", payload=BytesIO(req_body),
                                                    length=len(req_body),
                                                    http_headers=request_http,
                                                    warc_headers_dict=concurrent)
        self.files.write([response, request_record])
        self.crawler.stats.inc_value("warc/records", 2)

    def _on_file(self, name: str, size: int, records: int, closed: bool) -> None:
        if closed:
            self.crawler.stats.inc_value("warc/files")
        assert self.files is not None
        self._store_row(name, self.files.worker, size, records, closed)

    def _store_row(self, name: str, worker: str, size: int, records: int, closed: bool) -> None:
        if not self.database_url or self.files is None:
            return
        import psycopg

        try:
            with psycopg.connect(self.database_url, connect_timeout=10) as conn:
                conn.execute(UPSERT_FILE, (self.files.job_id, name, self.node, worker, size,
                                           records, closed))
        except psycopg.Error as exc:
            logger.warning("warc: could not record %s in the database: %s", name, exc)

    def _close_out_dead(self) -> None:
        assert self.files is not None
        for path in sorted(self.directory.glob(f"{self.files.job_id}-*{OPEN_SUFFIX}")):
            closed = close_out(path)
            if closed is None:
                continue  # a live worker's file
            name, size, records = closed
            worker = name[37:].rsplit("-", 1)[0]
            logger.info("warc: closed out %s of a dead worker (%d records)", name, records)
            self._store_row(name, worker, size, records, True)


def _headers(pairs: list[tuple[bytes, list[bytes]]]) -> list[tuple[str, str]]:
    out = []
    for key, values in pairs:
        name = key.decode("latin-1")
        if name.lower() == "transfer-encoding":
            continue
        out.extend((name, v.decode("latin-1")) for v in values)
    return out

