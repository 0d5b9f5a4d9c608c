"""The render guard's proxy: every connection Chromium makes passes a SOCKS5 proxy on loopback.

Chromium is started with ``--proxy-server=socks5://127.0.0.1:PORT`` (see
`crawler.renderguard`), so a navigation, a redirect, a subresource, a
fetch()/XHR, a WebSocket or a service worker's request is one SOCKS5
CONNECT to a host name and port. `GuardProxy` answers it the way the
downloader's address guard (`crawler.middlewares.addressguard`) would:

1. it resolves the name itself, with the crawler's mapping first
   (`CRAWLGRAPH_RESOLVE`, `crawler.resolver.HostMap`: the mapped address and
   connect port), the system resolver otherwise (``DNS_TIMEOUT``);
2. it refuses the connection (SOCKS reply "not allowed") when any of the
   addresses is private, loopback, link-local, CGNAT, multicast, reserved or
   metadata (`address_reason`, outside the allowed networks), unless private
   networks are allowed;
3. it connects to exactly the address it checked and relays bytes, so no
   second lookup (DNS rebinding) can move the connection elsewhere. TLS
   stays end to end between Chromium and the server, unless the crawl has a
   CA bundle (`CRAWLGRAPH_CA_BUNDLE`): then the proxy verifies the server
   against it, as plain fetches are, and speaks TLS to Chromium with a key
   of its own (`crawler.rendertls`).

Every outcome that is not a plain success (a refusal, a name that does not
resolve, a refused or timed-out connection, a certificate that fails) is
remembered for a while
(`recent_failures`) so that a failed navigation can say why, and a refusal
is reported to `on_refused(host, port, reason)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from crawler.middlewares.addressguard import IPNetwork, addresses_reason
from crawler.rendertls import TLS_RECORD, ServerSide, TlsBridge
from crawler.resolver import HostMap

logger = logging.getLogger(__name__)
_HANDSHAKE_TIMEOUT = 10.0
_CHUNK = 64 * 1024
_REMEMBERED = 1024

# SOCKS5 (RFC 1928) reply codes.
_OK, _NOT_ALLOWED, _HOST_UNREACHABLE, _CONN_REFUSED, _TTL_EXPIRED = 0, 2, 4, 5, 6
_CMD_UNSUPPORTED, _ATYP_UNSUPPORTED = 7, 8


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a connection to `host`:`port` ended when it did not go through."""

    host: str
    port: int
    kind: str  # "refused" (the guard), "dns", "connect", "timeout", "tls"
    detail: str
    at: float  # time.monotonic()


class _Refused(Exception):
    def __init__(self, kind: str, detail: str, code: int) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.code = kind, detail, code


class GuardProxy:
    """A SOCKS5 proxy on 127.0.0.1 that resolves, checks and connects for Chromium."""

    def __init__(self, *, hosts: HostMap | None = None, allowed: Sequence[IPNetwork] = (),
                 allow_private: bool = False, dns_timeout: float = 60.0,
                 connect_timeout: float = 30.0, tls: TlsBridge | None = None,
                 on_refused: Callable[[str, int, str], None] | None = None) -> None:
        self.hosts = hosts or HostMap()
        self.tls = tls
        self.allowed = list(allowed)
        self.allow_private = allow_private
        self.dns_timeout = dns_timeout
        self.connect_timeout = connect_timeout
        self.on_refused = on_refused
        self.connections = 0  # CONNECTs relayed
        self._failures: OrderedDict[tuple[str, int], Outcome] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        # Bound now, so the port is known (and ours) before Chromium is told it.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Serve on the bound port (on the running event loop)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, sock=self._sock)

    def unbind(self) -> None:
        """Give back the port of a proxy that never served (`start` was not called)."""
        if self._server is None:
            self._sock.close()

    async def close(self) -> None:
        """Stop serving and end every relayed connection."""
        if self._server is not None:
            self._server.close()
        self.unbind()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def recent_failures(self, since: float) -> list[Outcome]:
        """The connections that did not go through since `since` (monotonic), oldest first."""
        return [o for o in self._failures.values() if o.at >= since]

    # ------------------------------------------------------------------ a connection
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                host, port = await asyncio.wait_for(self._handshake(reader, writer),
                                                    _HANDSHAKE_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, ValueError, OSError):
                return  # not a SOCKS5 client we serve: drop it
            try:
                up_reader, upstream = await self._open(host, port)
            except _Refused as refused:
                self._remember(host, port, refused.kind, refused.detail)
                await _reply(writer, refused.code)
                return
            await _reply(writer, _OK)
            self.connections += 1
            await self._carry(host, port, reader, writer, up_reader, upstream)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # either side went away, or Chromium dropped the handshake
        except Exception:  # a bug here must not pass unseen, nor stop the other connections
            logger.exception("render proxy: a connection failed")
        finally:
            self._tasks.discard(task)
            for w in (writer, upstream):
                if w is not None:
                    w.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await w.wait_closed()

    async def _carry(self, host: str, port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                     upstream: asyncio.StreamWriter) -> None:
        """Relay a connection: bytes as they are, or TLS verified against the bundle."""
        if self.tls is None:
            await _relay(_Side(reader.read, _writes(writer), writer),
                         _Side(up_reader.read, _writes(upstream), upstream))
            return
        first = await reader.read(_CHUNK)
        if not first or first[0] != TLS_RECORD:
            upstream.write(first)
            await _relay(_Side(reader.read, _writes(writer), writer),
                         _Side(up_reader.read, _writes(upstream), upstream))
            return
        try:
            await asyncio.wait_for(upstream.start_tls(self.tls.client, server_hostname=host),
                                   self.connect_timeout)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._remember(host, port, "tls", f"{host}: {exc}")
            return
        client = ServerSide(reader, writer, self.tls.server, first)
        await client.handshake()
        await _relay(_Side(client.read, client.write, None),
                     _Side(up_reader.read, _writes(upstream), upstream))

    async def _handshake(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> tuple[str, int]:
        """Read the greeting and the CONNECT request; the target host and port."""
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")
            await writer.drain()
            raise ValueError("no SOCKS5 without authentication")
        writer.write(b"\x05\x00")
        await writer.drain()
        version, command, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        elif atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode("ascii", "replace")
        else:
            await _reply(writer, _ATYP_UNSUPPORTED)
            raise ValueError("address type")
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if version != 5 or command != 1:  # CONNECT only: no BIND, no UDP ASSOCIATE
            await _reply(writer, _CMD_UNSUPPORTED)
            raise ValueError("command")
        return host, port

    async def _open(self, host: str, port: int
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Resolve, check and connect; raises _Refused saying why not."""
        targets = await self._resolve(host, port)
        detail = None if self.allow_private else addresses_reason(
            host, (address for address, _ in targets), self.allowed)
        if detail is not None:
            if self.on_refused is not None:
                self.on_refused(host, port, detail)
            raise _Refused("refused", detail, _NOT_ALLOWED)
        last: _Refused | None = None
        for address, connect_port in targets:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, connect_port),
                                              self.connect_timeout)
            except TimeoutError:
                last = _Refused("timeout", f"{host} ({address}:{connect_port}): no answer "
                                f"in {self.connect_timeout:g} s", _TTL_EXPIRED)
            except OSError as exc:
                last = _Refused("connect", f"{host} ({address}:{connect_port}): "
                                f"{exc.strerror or exc}", _CONN_REFUSED)
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        """(address, port to connect to) for a host: the mapping, a literal, or DNS."""
        mapped = self.hosts.lookup(host, port)
        if mapped is not None:
            return [(t.address, t.port) for t in mapped]
        try:
            return [(str(ipaddress.ip_address(host.strip("[]"))), port)]
        except ValueError:
            pass
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM), self.dns_timeout)
        except (OSError, UnicodeError, TimeoutError) as exc:
            raise _Refused("dns", f"{host}: the name does not resolve ({exc})",
                           _HOST_UNREACHABLE) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise _Refused("dns", f"{host}: the name does not resolve", _HOST_UNREACHABLE)
        return [(a, port) for a in addresses]

    def _remember(self, host: str, port: int, kind: str, detail: str) -> None:
        key = (host, port)
        self._failures.pop(key, None)
        self._failures[key] = Outcome(host, port, kind, detail, time.monotonic())
        while len(self._failures) > _REMEMBERED:
            self._failures.popitem(last=False)


async def _reply(writer: asyncio.StreamWriter, code: int) -> None:
    writer.write(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
    await writer.drain()


@dataclass(frozen=True, slots=True)
class _Side:
    """One end of a relayed connection: read (b"" at the end), write, and its raw stream."""

    read: Callable[[int], Awaitable[bytes]]
    write: Callable[[bytes], Awaitable[None]]
    stream: asyncio.StreamWriter | None  # to half-close, or None (TLS: closed with the rest)


def _writes(writer: asyncio.StreamWriter) -> Callable[[bytes], Awaitable[None]]:
    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()
    return write


async def _relay(a: _Side, b: _Side) -> None:
    """Copy bytes both ways until both sides are done."""

    async def pipe(source: _Side, sink: _Side) -> None:
        try:
            while data := await source.read(_CHUNK):
                await sink.write(data)
            if sink.stream is not None and sink.stream.can_write_eof():
                sink.stream.write_eof()
        except (OSError, ssl.SSLError):
            for side in (source, sink):
                if side.stream is not None:
                    side.stream.close()

    await asyncio.gather(pipe(a, b), pipe(b, a))
