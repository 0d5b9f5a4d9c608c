"""A TCP relay: a service that listens on loopback, reached at another address.

The embedded PostgreSQL and Redis listen on 127.0.0.1 only, which a process
in another network namespace (another machine, for the crawl) cannot reach.
`Relay([(listen_host, port, target_host, target_port), ...])` accepts on each
listen address, in a thread of its own, and copies bytes both ways to the
target: the crawlers talk to the real services through it, as they would
through a network. `close()` stops it and drops every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

Route = tuple[str, int, str, int]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Relay:
    """Relays each `(listen_host, listen_port)` to its `(target_host, target_port)`."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> Relay:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        try:
            future.result(timeout=10)
        except BaseException:
            self.close()
            raise
        return self

    async def _listen(self) -> None:
        for host, port, target_host, target_port in self.routes:
            self._servers.append(await asyncio.start_server(
                self._handler(target_host, target_port), host, port, backlog=512,
                reuse_address=True))

    def _handler(self, host: str, port: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            for task in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
                t = asyncio.ensure_future(task)
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)

        return handle

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
