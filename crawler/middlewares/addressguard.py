"""The private-address guard: refuse crawl targets on private networks.

A URL whose host is, or resolves to, a private, loopback, link-local, CGNAT,
multicast, reserved or cloud-metadata address is refused (`AddressRefused`,
stat `addressguard/refused`), so a crawl job cannot be aimed at the machine
it runs on or its neighbours. Redirects are checked too: a redirected request
passes through the downloader middlewares again.

On by default; turned off (everything allowed) by the setting
`CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS` (which `crawler.addon` fills from the
environment variable `ALLOW_PRIVATE_NETWORKS=1` when a job leaves it unset).
`CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS` (a list of CIDR networks) lets
chosen private networks through while the guard stays on for the rest.
`is_refused_address` / `refused_reason` are the same check for other callers
(the job API validates submitted URLs with it). A host and port that
`CRAWLGRAPH_RESOLVE` maps (`crawler.resolver`) are checked on the mapped
addresses, those the crawler connects to, not on what DNS says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Self
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.settings import BaseSettings

from crawler.resolver import HostMap, default_port

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
             ipaddress.ip_address("100.100.100.200")}
_TRUE = {"1", "true", "yes", "on"}
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(IgnoreRequest):
    """A request refused because its target is on a private network."""


def address_reason(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an IP address may not be crawled ("loopback", "private", ...), or None if it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA:
        return "metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "cgnat"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def is_refused_address(address: str) -> bool:
    """True if this IP address is private/loopback/link-local/CGNAT/metadata/reserved."""
    return address_reason(address) is not None


def resolve_host(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def refused_reason(url: str, allowed: Sequence[IPNetwork] = (),
                   hosts: HostMap | None = None) -> str | None:
    """Why a URL's target may not be crawled, or None. Resolves the host name (blocking).

    `allowed` networks are let through. `hosts` (the `CRAWLGRAPH_RESOLVE`
    map) gives the addresses of the names it maps. A host that does not
    resolve is not refused here (the download fails on its own).
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    mapped = hosts.addresses(url) if hosts else None
    try:
        addresses = mapped if mapped is not None else resolve_host(host, parts.port)
    except (OSError, UnicodeError):
        if host.rstrip(".").lower() == "localhost" or host.endswith(".localhost"):
            return f"{host} is loopback"
        return None
    return addresses_reason(host, addresses, allowed)


def addresses_reason(host: str, addresses: Iterable[str],
                     allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why `host`, resolved to `addresses`, may not be reached, or None if every one may."""
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if any(ip in net for net in allowed):
            continue
        reason = address_reason(ip)
        if reason:
            return f"{host} resolves to {address} ({reason})"
    return None


def allowed_networks(settings: BaseSettings) -> list[IPNetwork]:
    """`CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS`: the networks let through despite the guard."""
    return [ipaddress.ip_network(n, strict=False)
            for n in settings.getlist("CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS")]


def private_networks_allowed(settings_value: object = None) -> bool:
    """The operator's switch: the value of `CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS` (unset: off)."""
    return str(settings_value).strip().lower() in _TRUE


class AddressGuardMiddleware:
    """Downloader middleware refusing requests to private-network targets."""

    def __init__(self, crawler: Crawler, cache_seconds: float,
                 allowed: Sequence[IPNetwork] = (), hosts: HostMap | None = None) -> None:
        self.crawler = crawler
        self.cache_seconds = cache_seconds
        self.allowed = list(allowed)
        self.hosts = hosts or HostMap()
        self._cache: dict[str, tuple[float, str | None]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if private_networks_allowed(crawler.settings.get("CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS")):
            raise NotConfigured("private networks are allowed")
        return cls(crawler, crawler.settings.getfloat("CRAWLGRAPH_ADDRESSGUARD_CACHE_SECONDS",
                                                      300), allowed_networks(crawler.settings),
                   HostMap.from_settings(crawler.settings))

    async def process_request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            return
        # The effective port: CRAWLGRAPH_RESOLVE may map http and https apart.
        key = f"{parts.hostname}:{parts.port or default_port(parts.scheme)}"
        cached = self._cache.get(key)
        if cached is None or cached[0] < time.monotonic():
            # getaddrinfo blocks: run it off the event loop.
            reason = await asyncio.to_thread(refused_reason, request.url, self.allowed,
                                             self.hosts)
            cached = (time.monotonic() + self.cache_seconds, reason)
            self._cache[key] = cached
        if cached[1] is not None:
            self.crawler.stats.inc_value("addressguard/refused")
            raise AddressRefused(f"refused private address: {cached[1]}")
