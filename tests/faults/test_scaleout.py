"""Scenario 30: one job on two scrapyd nodes, each in a network namespace of its own.

The nodes share the session's PostgreSQL and Redis (on the host side of their
veths, `tests.scaleout`); the API knows them by ``SCRAPYD_URLS`` and puts one
worker of the job on each. Six sites, each on an address of its own, are
crawled politely (one request at a time per host, a delay between two). The
truth is the sites': the pages the generator made, and each server's request
log, which names the address of the node that asked.

With a node killed (`kill -9` of its scrapyd and its crawler process) a third
into the crawl, its leases expire (``CRAWLGRAPH_LEASE_SECONDS``) and the other
node's worker requeues them and fetches them: the job still ends with every
page stored once, and the only pages fetched twice are ones the dead node had
fetched and not stored.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.scaleout import ScaleOut, wait_stored
from tests.test_crawl_reliability import leased_urls

pytestmark = pytest.mark.slow

SITES, PAGES = 6, 80
CRAWLER_SETTINGS = {"CRAWLGRAPH_THROTTLE_MIN_DELAY": 0.2,
                    "CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY": 1,
                    "CRAWLGRAPH_THROTTLE_ADAPTIVE": False,
                    "CRAWLGRAPH_LEASE_SECONDS": 8, "CRAWLGRAPH_STATS_INTERVAL": 1}
CRAWL_TIMEOUT = 180


@pytest.fixture
def cluster(database_url: str, redis_url: str):
    with ScaleOut(database_url, redis_url, nodes=2, sites=SITES, pages=PAGES,
                  page_delay=0.05, crawler_settings=CRAWLER_SETTINGS) as scaleout:
        yield scaleout


def submit_two_workers(cluster: ScaleOut) -> str:
    api = cluster.api([0, 1])
    return cluster.submit(api, {"start_urls": cluster.start_urls(), "workers": 2,
                                "settings": {"CONCURRENT_REQUESTS": 4}})


def assert_stored_once(cluster: ScaleOut, job: str) -> set[str]:
    """The job finished with every page of the sites stored once; the pages."""
    expected = cluster.expected_pages()
    try:
        row = cluster.wait_ended(job, CRAWL_TIMEOUT)
    except AssertionError as exc:
        stored = set(cluster.stored_pages(job))
        raise AssertionError(f"{exc}: {len(stored & expected)} of {len(expected)} pages "
                             "stored") from None
    assert row["status"] == "finished", row
    assert sorted(e["node"] for e in row["scrapyd_jobs"]) == [0, 1], row["scrapyd_jobs"]
    stored = cluster.stored_pages(job)
    assert len(stored) == len(set(stored))
    assert set(stored) == expected, (sorted(expected - set(stored))[:5],
                                     sorted(set(stored) - expected)[:5])
    return expected


@pytest.mark.scenario(30, done="one job, two workers, on two scrapyd nodes in network "
                              "namespaces sharing PostgreSQL and Redis",
                      checked="every page of six sites fetched once (the sites' logs) and "
                              "stored once; both nodes fetched")
def test_two_nodes_fetch_and_store_every_page_once(cluster: ScaleOut) -> None:
    job = submit_two_workers(cluster)
    expected = assert_stored_once(cluster, job)
    counts = cluster.fetch_counts()
    assert set(counts) == expected
    assert set(counts.values()) == {1}, counts.most_common(3)
    by_node = Counter(peer for _, peer, _ in cluster.fetches())
    assert set(by_node) == {cluster.node_address(0), cluster.node_address(1)}, by_node
    assert min(by_node.values()) >= len(expected) // 5, by_node  # both took a share


@pytest.mark.scenario(30, done="kill -9 one of the two nodes (scrapyd and its crawler) a "
                              "third into the crawl",
                      checked="its leases fetched by the other node; job finished, every page "
                              "stored once; pages fetched twice only ones it had not stored")
def test_a_killed_nodes_leases_go_to_the_other_node(cluster: ScaleOut) -> None:
    victim, survivor = cluster.node_address(0), cluster.node_address(1)
    job = submit_two_workers(cluster)
    wait_stored(cluster, job, len(cluster.expected_pages()) // 3, 120)
    killed = cluster.kill_node(0)
    killed_at = time.time()
    leased_at_kill = leased_urls(cluster.local_redis_url, job)
    stored_at_kill = set(cluster.stored_pages(job))
    assert len(killed) >= 2, killed  # scrapyd and its crawler process
    before = [(url, peer) for url, peer, t in cluster.fetches() if t < killed_at]
    fetched_before = {url for url, _ in before}
    # What the dead node had taken and not stored: fetched and not stored, or leased and
    # not fetched yet. All of it must be fetched again, by the other node.
    orphans = ({url for url, peer in before if peer == victim} - stored_at_kill) | (
        leased_at_kill - fetched_before)
    assert orphans, "the killed node held nothing"

    expected = assert_stored_once(cluster, job)
    after = [(url, peer) for url, peer, t in cluster.fetches() if t >= killed_at]
    assert {peer for _, peer in after} <= {survivor}
    assert orphans <= {url for url, _ in after}, sorted(orphans - {u for u, _ in after})[:5]
    counts = cluster.fetch_counts()
    assert set(counts) == expected
    repeated = {url for url, n in counts.items() if n > 1}
    assert all(counts[url] == 2 for url in repeated), Counter(counts.values())
    # Fetched twice: first by the dead node, then, after the kill, by the other one.
    assert repeated <= {url for url, peer in before if peer == victim}, repeated
    assert repeated <= {url for url, _ in after}, repeated
    print(f"killed node's pids {killed}; {len(orphans)} of its requests fetched again by the "
          f"other node; {len(repeated)} pages fetched twice of {len(expected)}")
