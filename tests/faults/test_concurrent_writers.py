"""Scenario 31: two storage writers store batches whose links share URLs, at once.

Every page of a site links to its navigation, so two batches written side by
side (`CRAWLGRAPH_STORAGE_WRITERS`, or two workers of one job) insert many of
the same URLs into `urls`. Each transaction takes a URL's index entry as it
inserts it; in two different orders, two writers wait for each other and
PostgreSQL kills one (a deadlock): its batch is rolled back and written again
later. The store inserts URLs (and a page's row of links) in id order, so
writers never wait on each other in a cycle.
"""

from __future__ import annotations

import random
import threading

import psycopg
import pytest

from crawler.items import Link
from crawler.pipelines.errors import StorageUnavailable
from crawler.pipelines.rows import to_row
from crawler.pipelines.store import PostgresStore
from tests.test_pipeline_store import make_job

ROUNDS = 10
LINKS = 5000
SHARED = 5000  # URLs each round's two batches may link to


def _batch(rng: random.Random, writer: int, round_: int) -> list:
    """Links from pages of this writer's own to a random share of the shared URLs:
    a small share for one writer, a large one for the other, so that the two
    batches do not bring their URLs in one order."""
    targets = rng.sample(range(SHARED), SHARED // 8 if writer else SHARED * 3 // 4)
    shared = f"http://a.test/shared/r{round_}"  # new URLs each round: none stored yet
    return [to_row(Link(source_url=f"http://a.test/w{writer}/r{round_}/{i // 10}",
                        target_url=f"{shared}/{targets[i % len(targets)]}"))
            for i in range(LINKS)]


@pytest.mark.scenario(31, done="two writers store overlapping link batches at once, 6 rounds",
                      checked="no batch rolled back by a deadlock; every link stored once")
def test_two_writers_sharing_urls_never_deadlock(database_url: str) -> None:
    job = make_job(database_url)
    stores = [PostgresStore(database_url, job) for _ in range(2)]
    rng = random.Random(31)
    errors: list[str] = []
    expected = set()
    try:
        for round_ in range(ROUNDS):
            batches = [_batch(rng, writer, round_) for writer in range(2)]
            for rows in batches:
                expected |= {row.key for row in rows}
            start = threading.Barrier(2)

            def write(store: PostgresStore, rows: list, start: threading.Barrier) -> None:
                start.wait(timeout=30)
                try:
                    store.write(rows)
                except StorageUnavailable as exc:
                    errors.append(str(exc).splitlines()[0])

            threads = [threading.Thread(target=write, args=(store, rows, start))
                       for store, rows in zip(stores, batches, strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not any(thread.is_alive() for thread in threads)
    finally:
        for store in stores:
            store.close()
    assert errors == []
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT source_url, target_url FROM link_urls WHERE job_id = %s",
                              (job,)).fetchall()
    assert len(stored) == len(expected) and set(stored) == expected
