"""StoragePipeline: batching, flush by time and on close, retry, backpressure."""

from __future__ import annotations

import asyncio
import logging
import socket

import psycopg
import pytest

from crawler.items import Link
from crawler.pipelines import StoragePipeline
from tests.test_pipeline_store import count, make_job


def link(i: int) -> Link:
    return Link(source_url="http://a.test/", target_url=f"http://a.test/{i}")


def set_url(pipeline: StoragePipeline, url: str) -> None:
    for store in pipeline.stores:
        store.database_url = url


def stored(database_url: str, job: str) -> int:
    return count(database_url, "SELECT count(*) FROM links WHERE job_id=%s", job)


def test_full_batches_commit_and_close_flushes_the_rest(database_url: str) -> None:
    job = make_job(database_url)

    async def scenario() -> None:
        pipeline = StoragePipeline(database_url, job, batch_size=10, flush_seconds=60)
        await pipeline.open_spider()
        items = [link(i) for i in range(25)]
        assert [pipeline.process_item(i) for i in items] == items
        assert pipeline.commit_barrier() == 25
        await asyncio.wait_for(pipeline.wait_committed(20), 20)
        await asyncio.sleep(0.2)
        # Two full batches are committed; the last five wait for more rows or close.
        assert pipeline.committed == 20
        assert stored(database_url, job) == 20
        await pipeline.close_spider()
        assert pipeline.committed == 25

    asyncio.run(scenario())
    assert stored(database_url, job) == 25


def test_a_lone_item_is_flushed_after_flush_seconds(database_url: str) -> None:
    job = make_job(database_url)

    async def scenario() -> float:
        pipeline = StoragePipeline(database_url, job, batch_size=1000, flush_seconds=0.3)
        await pipeline.open_spider()
        loop = asyncio.get_running_loop()
        start = loop.time()
        pipeline.process_item(link(1))
        await asyncio.wait_for(pipeline.wait_committed(1), 20)
        waited = loop.time() - start
        # The row is committed by the time the watermark passes it.
        assert stored(database_url, job) == 1
        await pipeline.close_spider()
        return waited

    assert asyncio.run(scenario()) >= 0.25


def test_commit_listeners_hear_the_watermark_move_in_order(database_url: str) -> None:
    job = make_job(database_url)
    heard: list[int] = []

    async def scenario() -> None:
        pipeline = StoragePipeline(database_url, job, batch_size=7, flush_seconds=0.1,
                                   writers=3)
        pipeline.add_commit_listener(lambda: heard.append(pipeline.committed))
        await pipeline.open_spider()
        for i in range(100):
            pipeline.process_item(link(i))
        await asyncio.wait_for(pipeline.wait_committed(100), 20)
        await pipeline.close_spider()

    asyncio.run(scenario())
    assert heard == sorted(heard) and heard[-1] == 100
    assert all(h % 7 == 0 or h == 100 for h in heard)
    assert stored(database_url, job) == 100


def test_database_down_keeps_the_batch_and_retries(database_url: str, caplog) -> None:
    job = make_job(database_url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]

    async def scenario() -> None:
        pipeline = StoragePipeline(database_url, job, batch_size=5, flush_seconds=0.1,
                                   retry_max_seconds=0.5)
        set_url(pipeline, f"postgresql://x:y@127.0.0.1:{dead_port}/none")
        await pipeline.open_spider()
        for i in range(12):
            pipeline.process_item(link(i))
        await asyncio.sleep(1.0)
        assert pipeline.committed == 0
        set_url(pipeline, database_url)  # the database is back
        await asyncio.wait_for(pipeline.wait_committed(12), 20)
        await pipeline.close_spider()

    with caplog.at_level(logging.WARNING, logger="crawler.pipelines.storage"):
        asyncio.run(scenario())
    assert "retrying" in caplog.text
    assert stored(database_url, job) == 12


class _Engine:
    """Records pause/unpause calls (the pipeline's only use of the engine)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def unpause(self) -> None:
        self.calls.append("unpause")


class _Crawler:
    stats = None

    def __init__(self) -> None:
        self.engine = _Engine()


def test_full_buffer_pauses_the_engine_until_written(database_url: str) -> None:
    job = make_job(database_url)
    crawler = _Crawler()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]

    async def scenario() -> None:
        pipeline = StoragePipeline(database_url, job, batch_size=10, flush_seconds=0.05,
                                   buffer_max_rows=30, retry_max_seconds=0.2, crawler=crawler)
        set_url(pipeline, f"postgresql://x:y@127.0.0.1:{dead_port}/none")
        await pipeline.open_spider()
        for i in range(40):
            pipeline.process_item(link(i))
        await asyncio.sleep(0.5)
        assert crawler.engine.calls == ["pause"]
        set_url(pipeline, database_url)
        await asyncio.wait_for(pipeline.wait_committed(40), 20)
        assert crawler.engine.calls == ["pause", "unpause"]
        await pipeline.close_spider()

    asyncio.run(scenario())
    assert stored(database_url, job) == 40


def test_poison_item_does_not_hold_back_the_batch(database_url: str) -> None:
    job = make_job(database_url)

    async def scenario() -> None:
        pipeline = StoragePipeline(database_url, job, batch_size=4, flush_seconds=5)
        await pipeline.open_spider()
        items = [link(1), Link(source_url="http://a.test/", target_url="mailto:x@a.test"),
                 link(2), Link(source_url="http://a.test/", target_url="http://a.test/\x00")]
        for item in items:
            pipeline.process_item(item)
        await asyncio.wait_for(pipeline.wait_committed(4), 20)
        await pipeline.close_spider()

    asyncio.run(scenario())
    assert stored(database_url, job) == 2
    with psycopg.connect(database_url) as conn:
        errors = [r[0] for r in conn.execute("SELECT error FROM dead_letters ORDER BY id")]
    assert len(errors) == 2
    assert any("invalid link" in e for e in errors) and any("0x00" in e for e in errors)


def test_flush_now_writes_the_open_batch_at_once(database_url: str) -> None:
    job = make_job(database_url)

    async def scenario() -> None:
        pipeline = StoragePipeline(database_url, job, batch_size=1000, flush_seconds=60)
        await pipeline.open_spider()
        for i in range(3):
            pipeline.process_item(link(i))
        pipeline.flush_now()
        await asyncio.wait_for(pipeline.wait_committed(3), 10)
        assert stored(database_url, job) == 3
        await pipeline.close_spider()

    asyncio.run(scenario())


def test_the_pipeline_is_reachable_through_the_crawler() -> None:
    from scrapy import Spider
    from scrapy.exceptions import NotConfigured
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(Spider, {"CRAWLGRAPH_DATABASE_URL": "postgresql://x@127.0.0.1/x"})
    crawler.spider = Spider.from_crawler(crawler, name="s", job_id="j")
    pipeline = StoragePipeline.from_crawler(crawler)
    assert StoragePipeline.for_crawler(crawler) is pipeline
    without_job = get_crawler(Spider, {"CRAWLGRAPH_DATABASE_URL": "postgresql://x@127.0.0.1/x"})
    without_job.spider = Spider.from_crawler(without_job, name="s")
    with pytest.raises(NotConfigured):
        StoragePipeline.from_crawler(without_job)
    assert StoragePipeline.for_crawler(without_job) is None
