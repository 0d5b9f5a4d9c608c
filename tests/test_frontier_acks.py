"""When a lease may be acknowledged: the engine is done with its request and its items committed."""

from __future__ import annotations

from collections.abc import Callable

from scrapy import Request

from crawler.frontier.acks import Acknowledgements


class FakeStorage:
    """The commit watermark of a storage pipeline, moved by hand."""

    def __init__(self) -> None:
        self.appended = 0
        self.committed = 0
        self.flushed = 0
        self._listeners: list[Callable[[], None]] = []

    def commit_barrier(self) -> int:
        return self.appended

    def add_commit_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def flush_now(self) -> None:
        self.flushed += 1

    def commit(self, upto: int) -> None:
        self.committed = upto
        for listener in self._listeners:
            listener()


def tracker(engine: set[Request]) -> tuple[Acknowledgements, list[int]]:
    woken: list[int] = []
    return Acknowledgements(lambda: engine, lambda: woken.append(1)), woken


def test_without_storage_a_request_is_ready_when_the_engine_drops_it() -> None:
    one, two = Request("http://a.test/1"), Request("http://a.test/2")
    engine = {one, two}
    acks, woken = tracker(engine)
    acks.hand_out(b"m1", one)
    acks.hand_out(b"m2", two)
    acks.sweep()
    assert acks.take() == [] and not woken
    engine.discard(two)
    acks.sweep()
    assert woken and acks.take() == [b"m2"]
    assert acks.held() == [b"m1"] and acks.busy


def test_with_storage_a_done_request_waits_for_its_items_commit() -> None:
    request = Request("http://a.test/1")
    engine = {request}
    storage = FakeStorage()
    acks, woken = tracker(engine)
    acks.watch_commits(storage)
    acks.hand_out(b"m1", request)
    storage.appended = 5  # the response's items are appended, not committed
    engine.clear()
    acks.sweep()
    assert acks.take() == [] and list(acks.awaiting) == [(5, b"m1")]
    acks.hurry_commits()  # nothing else in flight: write now
    assert storage.flushed == 1
    storage.commit(4)
    assert acks.take() == [] and not woken
    storage.commit(5)
    assert woken and acks.take() == [b"m1"] and not acks.busy


def test_members_that_could_not_be_acknowledged_go_back_first() -> None:
    acks, _ = tracker(set())
    acks.done(b"a")
    taken = acks.take()
    acks.done(b"b")
    acks.put_back(taken)
    assert acks.take() == [b"a", b"b"]


def test_no_open_spider_leaves_requests_in_flight_and_closing_abandons_them() -> None:
    acks = Acknowledgements(lambda: None, lambda: None)
    acks.hand_out(b"m1", Request("http://a.test/1"))
    acks.sweep()
    assert acks.abandon() == [b"m1"] and not acks.busy
