"""The Redis scheduler through a real crawl (subprocess, mock server, Redis, PostgreSQL).

One worker crawls a seeded job with the storage pipeline on: every page is
fetched once and stored once, every lease is acknowledged, and the finished
job's frontier is cleared. The scrapyd scenarios (kill -9, several workers,
outages, pause) are in `tests/test_crawl_reliability.py`.
"""

from __future__ import annotations

import redis

from tests.crawlrun import run_crawl
from tests.test_crawl_reliability import assert_complete, make_job, page_fetches
from tests.test_frontier_queue import BlockingFrontier

FOLLOW = "tests.spiders.follow.FollowSpider"


def test_every_page_is_fetched_stored_and_acknowledged_once(mock_server, database_url,
                                                            redis_url) -> None:
    server = mock_server(pages=60, seed=3)
    job = make_job(database_url)
    frontier = BlockingFrontier(redis_url, job)
    assert frontier.seed([server.start_url]) == 1
    result = run_crawl(FOLLOW, {"job_id": job, "start_urls": server.start_url},
                       {"CRAWLGRAPH_DATABASE_URL": database_url,
                        "CRAWLGRAPH_REDIS_URL": redis_url, "ROBOTSTXT_OBEY": False,
                        "CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS": True}, stack=True)
    assert result.reason == "finished", result.log[-3000:]
    assert_complete(server, database_url, job)
    assert set(page_fetches(server).values()) == {1}
    stats = result.stats
    assert stats["frontier/dequeued"] == stats["frontier/acked"] == 60
    assert stats["frontier/leased"] == 0  # the last refresh's count: nothing left leased
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=frontier.keys.pattern))
    finally:
        client.close()
