"""The render guard's SOCKS5 proxy and its wiring, without a browser (scenario 21 has Chromium)."""

from __future__ import annotations

import asyncio
import ipaddress
import struct

import pytest
from scrapy.settings import Settings
from twisted.internet import error as net

from core.errors import ConfigError
from crawler import renderguard
from crawler.renderguard import RenderGuardMiddleware, RenderRefused, install
from crawler.renderproxy import GuardProxy
from crawler.resolver import HostMap


async def _echo_server() -> tuple[asyncio.Server, list[int]]:
    accepted: list[int] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0), accepted


async def _connect(proxy: GuardProxy, host: str, port: int, command: int = 1) -> tuple[int, bytes]:
    """A SOCKS5 CONNECT through the proxy: (reply code, what an echo sent back)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    try:
        address = b"\x01" + ipaddress.IPv4Address(host).packed
    except ValueError:
        address = b"\x03" + bytes([len(host)]) + host.encode()
    writer.write(bytes([5, command, 0]) + address + struct.pack("!H", port))
    reply = await reader.readexactly(10)
    echoed = b""
    if reply[1] == 0:
        writer.write(b"ping")
        echoed = await reader.read(100)
    writer.close()
    return reply[1], echoed


def _run(allow_private: bool, allowed=(), entries=(), **checks):
    async def main():
        server, accepted = await _echo_server()
        port = server.sockets[0].getsockname()[1]
        refused: list[tuple[str, int, str]] = []
        mapping = HostMap.parse([e.format(port=port) for e in entries])
        proxy = GuardProxy(hosts=mapping, allow_private=allow_private,
                           allowed=[ipaddress.ip_network(n) for n in allowed],
                           dns_timeout=5, connect_timeout=5,
                           on_refused=lambda *a: refused.append(a))
        await proxy.start()
        try:
            results = {name: await _connect(proxy, *target(port))
                       for name, target in checks.items()}
        finally:
            await proxy.close()
            server.close()
        return results, accepted, refused, proxy

    return asyncio.run(main())


def test_a_mapped_name_is_relayed_to_its_mapped_address_when_allowed():
    results, accepted, refused, proxy = _run(
        True, entries=["named.test:80:127.0.0.1:{port}"], named=lambda p: ("named.test", 80))
    assert results["named"] == (0, b"ping") and accepted == [1] and refused == []
    assert proxy.connections == 1


def test_private_addresses_are_refused_by_name_literal_and_any_of_several():
    results, accepted, refused, proxy = _run(
        False, entries=["named.test:80:127.0.0.1:{port}", "multi.test:80:93.184.216.34",
                        "multi.test:80:10.0.0.5"],
        named=lambda p: ("named.test", 80), literal=lambda p: ("127.0.0.1", p),
        multi=lambda p: ("multi.test", 80), localhost=lambda p: ("localhost", p))
    assert {name: code for name, (code, _) in results.items()} == {
        "named": 2, "literal": 2, "multi": 2, "localhost": 2}
    assert accepted == [] and proxy.connections == 0
    reasons = {host: reason for host, _, reason in refused}
    assert reasons["named.test"] == "named.test resolves to 127.0.0.1 (loopback)"
    assert reasons["multi.test"] == "multi.test resolves to 10.0.0.5 (private)"
    assert {f.kind for f in proxy.recent_failures(0)} == {"refused"}


def test_allowed_networks_pass_while_the_guard_is_on():
    results, accepted, refused, _ = _run(False, allowed=["127.0.0.0/8"],
                                         literal=lambda p: ("127.0.0.1", p))
    assert results["literal"] == (0, b"ping") and accepted == [1] and refused == []


def test_what_does_not_go_through_is_remembered_with_its_cause():
    results, _, refused, proxy = _run(
        True, entries=["closed.test:80:127.0.0.1:1"],
        dns=lambda p: ("no-such-host.invalid", 80), closed=lambda p: ("closed.test", 80),
        bind=lambda p: ("127.0.0.1", p) + (2,))
    assert {name: code for name, (code, _) in results.items()} == {
        "dns": 4, "closed": 5, "bind": 7}
    kinds = {f.host: f.kind for f in proxy.recent_failures(0)}
    assert kinds == {"no-such-host.invalid": "dns", "closed.test": "connect"}
    assert refused == []


def _settings(**values) -> Settings:
    settings = Settings()
    for name, value in values.items():
        settings.set(name, value, priority="project")
    return settings


def test_install_puts_its_switches_over_a_projects_launch_options():
    settings = _settings(PLAYWRIGHT_LAUNCH_OPTIONS={
        "args": ["--no-sandbox", "--proxy-server=http://elsewhere:3128",
                 "--proxy-bypass-list=*"], "proxy": {"server": "http://elsewhere:3128"}})
    proxy = install(settings)
    try:
        options = settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")
        assert "proxy" not in options
        assert options["args"] == ["--no-sandbox",
                                   *renderguard.chromium_switches(proxy.url)]
        assert settings.getint(renderguard.PORT_SETTING) == proxy.port
        assert renderguard.MIDDLEWARE in settings.getdict("DOWNLOADER_MIDDLEWARES")
    finally:
        asyncio.run(renderguard._BOUND.pop(proxy.port).close())


@pytest.mark.parametrize("values", [{"PLAYWRIGHT_CDP_URL": "http://127.0.0.1:9222"},
                                    {"PLAYWRIGHT_CONTEXTS": {"a": {"proxy": {"server": "x"}}}}])
def test_a_browser_the_guard_cannot_cover_stops_the_crawl(values):
    with pytest.raises(ConfigError, match="guard"):
        install(_settings(**values))


class _Crawler:
    def __init__(self, port: int) -> None:
        from scrapy.signalmanager import SignalManager
        from scrapy.statscollectors import MemoryStatsCollector

        self.settings = _settings(**{renderguard.PORT_SETTING: port})
        self.signals = SignalManager()
        self.stats = MemoryStatsCollector(self)  # type: ignore[arg-type]


def test_a_navigation_failing_at_the_proxy_says_what_the_proxy_saw():
    from scrapy import Request

    proxy = GuardProxy()
    renderguard._BOUND[proxy.port] = proxy
    crawler = _Crawler(proxy.port)
    mw = RenderGuardMiddleware.from_crawler(crawler)  # type: ignore[arg-type]
    socks = Exception("Page.goto: net::ERR_SOCKS_CONNECTION_FAILED at http://a.test/")
    redirected, dead, other = (Request("http://a.test/"), Request("http://dead.test/"),
                               Request("http://b.test/"))
    for request in (redirected, dead, other):
        mw.process_request(request)
    proxy.on_refused("internal.test", 80, "internal.test resolves to 127.0.0.1 (loopback)")
    proxy._remember("internal.test", 80, "refused", "internal.test resolves to 127.0.0.1 "
                    "(loopback)")
    proxy._remember("dead.test", 80, "dns", "dead.test: the name does not resolve")
    with pytest.raises(RenderRefused, match=r"refused private address: internal\.test "
                                            r"resolves to 127\.0\.0\.1 \(loopback\)"):
        mw.process_exception(redirected, socks)
    with pytest.raises(net.DNSLookupError, match="dead.test"):
        mw.process_exception(dead, socks)
    # Another error is left as it is.
    assert mw.process_exception(other, Exception("net::ERR_ABORTED")) is None
    assert crawler.stats.get_value("rendering/guard_refused") == 1
    proxy._sock.close()


def _tls_through(bridge_ca, server_ca) -> tuple[bytes, list, str]:
    """A TLS echo server with a certificate from `server_ca`, reached through a bundle proxy."""
    import ssl
    import tempfile
    from pathlib import Path

    from crawler.rendertls import TlsBridge

    async def main():
        served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ca.issue_cert("secure.test").configure_cert(served)

        async def echo(reader, writer):
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=served)
        port = server.sockets[0].getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            bundle = Path(tmp, "ca.pem")
            bridge_ca.cert_pem.write_to_path(str(bundle))
            bridge = TlsBridge(bundle)
        proxy = GuardProxy(hosts=HostMap.parse(f"secure.test:443:127.0.0.1:{port}"),
                           allow_private=True, tls=bridge)
        await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"\x05\x01\x00")
        await reader.readexactly(2)
        writer.write(b"\x05\x01\x00\x03\x0bsecure.test" + struct.pack("!H", 443))
        assert (await reader.readexactly(10))[1] == 0
        # Chromium's side: it trusts nothing but the proxy's own key.
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        echoed, spki = b"", ""
        try:
            await writer.start_tls(client, server_hostname="secure.test")
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            spki = _spki_hash(der)
            writer.write(b"ping")
            await writer.drain()
            echoed = await reader.read(100)
        except (ssl.SSLError, ConnectionError):
            pass  # the proxy hung up: upstream was not verified
        writer.close()
        await proxy.close()
        server.close()
        return echoed, proxy.recent_failures(0), spki == bridge.spki_hash

    return asyncio.run(main())


def _spki_hash(der: bytes) -> str:
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_der_x509_certificate(der).public_key()
    spki = key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_with_a_bundle_the_proxy_verifies_upstream_and_answers_with_its_own_key():
    import trustme

    ca = trustme.CA()
    echoed, failures, own_key = _tls_through(ca, ca)
    assert echoed == b"ping" and failures == [] and own_key
    echoed, failures, _ = _tls_through(ca, trustme.CA())  # a server the bundle does not vouch for
    assert echoed == b""
    assert [(f.host, f.kind) for f in failures] == [("secure.test", "tls")]
    assert "certificate verify failed" in failures[0].detail
