"""When the lease of a handed-out request may be acknowledged.

A request the scheduler hands to the engine is *in flight* until the engine
drops it (`crawler.scrapyinternals.requests_in_progress`): Scrapy does that
only after the response went through the spider and every item it produced
went through the item pipelines (requests the download produced instead,
redirects and retries, were enqueued before that). Without a storage
pipeline the request is then *ready*: its lease may be acknowledged. With one
(`watch_commits`), it first *awaits the commit*: it notes the pipeline's
`commit_barrier()` (the rows appended so far, which include its items) and is
ready once the pipeline's `committed` watermark has reached it, i.e. once
every item of the response is in PostgreSQL.

A request a downloader middleware deferred (`crawler.frontier.defer`) is
not acknowledged at all: it leaves the in-flight set for the deferrals, whose
leases the worker swaps for a not-before time in the job's frontier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container
from typing import Protocol

from scrapy import Request


class CommitSource(Protocol):
    """What acknowledgements wait for: `crawler.pipelines.StoragePipeline`."""

    committed: int

    def commit_barrier(self) -> int: ...
    def add_commit_listener(self, callback: Callable[[], None]) -> None: ...
    def flush_now(self) -> None: ...


class Acknowledgements:
    """In-flight, committing and ready members of one worker, in order.

    `in_progress` gives the requests the engine still holds (None while no
    spider is open); `on_ready` is called when members become ready.
    """

    def __init__(self, in_progress: Callable[[], Container[Request] | None],
                 on_ready: Callable[[], None]) -> None:
        self._in_progress = in_progress
        self._on_ready = on_ready
        self.storage: CommitSource | None = None
        self.inflight: dict[int, tuple[bytes, Request]] = {}
        # Done requests waiting for their items' commit: (barrier, member), in order.
        self.awaiting: deque[tuple[int, bytes]] = deque()
        self.ready: list[bytes] = []
        # Requests to fetch later: (member, delay ms), in the order they were deferred.
        self.deferrals: list[tuple[bytes, int]] = []

    def watch_commits(self, storage: CommitSource) -> None:
        """Acknowledge a done request only once `storage` has committed its items."""
        self.storage = storage
        storage.add_commit_listener(self.release_committed)

    @property
    def busy(self) -> bool:
        """Some member is in flight, awaiting its commit, or not acknowledged or deferred yet."""
        return bool(self.inflight or self.awaiting or self.ready or self.deferrals)

    def hand_out(self, member: bytes, request: Request) -> None:
        self.inflight[id(request)] = (member, request)

    def holds(self, request: Request) -> bool:
        """Whether this worker handed `request` out and holds its lease."""
        held = self.inflight.get(id(request))
        return held is not None and held[1] is request

    def defer(self, request: Request, delay_ms: int) -> bool:
        """Take a handed-out request off the acknowledgements, to defer it by `delay_ms`.

        False if this worker did not hand it out (it has no lease to defer).
        """
        if not self.holds(request):
            return False
        member, _ = self.inflight.pop(id(request))
        self.deferrals.append((member, max(0, int(delay_ms))))
        return True

    def take_deferrals(self) -> list[tuple[bytes, int]]:
        """The deferrals to send; `put_back_deferrals` what could not be."""
        deferrals, self.deferrals = self.deferrals, []
        return deferrals

    def put_back_deferrals(self, deferrals: list[tuple[bytes, int]]) -> None:
        self.deferrals[:0] = deferrals

    def done(self, member: bytes) -> None:
        """Acknowledge `member` with the next batch (a request that cannot be restored)."""
        self.ready.append(member)

    def sweep(self) -> None:
        """Move handed-out requests the engine has finished with on."""
        if not self.inflight:
            return
        inprogress = self._in_progress()
        if inprogress is None:
            return
        done = [key for key, (_, request) in self.inflight.items() if request not in inprogress]
        if not done:
            return
        if self.storage is None:
            self.ready += [self.inflight.pop(key)[0] for key in done]
            self._on_ready()
            return
        # The items of these responses are appended by now; they are committed
        # once the pipeline's watermark reaches the current barrier.
        barrier = self.storage.commit_barrier()
        for key in done:
            self.awaiting.append((barrier, self.inflight.pop(key)[0]))
        self.release_committed()

    def release_committed(self) -> None:
        """Make ready every awaiting member whose items are committed."""
        if self.storage is None:
            return
        committed = self.storage.committed
        released = False
        while self.awaiting and self.awaiting[0][0] <= committed:
            self.ready.append(self.awaiting.popleft()[1])
            released = True
        if released:
            self._on_ready()

    def hurry_commits(self) -> None:
        """With nothing in flight, have the storage write now instead of at its flush timer."""
        if self.awaiting and not self.inflight:
            self.storage.flush_now()

    def take(self) -> list[bytes]:
        """The ready members, to acknowledge; `put_back` what could not be."""
        ready, self.ready = self.ready, []
        return ready

    def put_back(self, members: list[bytes]) -> None:
        self.ready[:0] = members

    def held(self) -> list[bytes]:
        """Every member whose lease this worker still needs (to renew)."""
        return ([m for m, _ in self.inflight.values()] + [m for _, m in self.awaiting]
                + self.ready + [m for m, _ in self.deferrals])

    def abandon(self) -> list[bytes]:
        """Forget the requests still in flight (the spider closes); return their members."""
        members = [m for m, _ in self.inflight.values()]
        self.inflight.clear()
        return members
