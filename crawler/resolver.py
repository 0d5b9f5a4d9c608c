"""Host names mapped to addresses, like curl's ``--resolve``: `CRAWLGRAPH_RESOLVE`.

A crawl can reach a staging server under its real name, and the tests serve
``example.test``, ``www.example.test`` and many more names from loopback,
without touching the system's resolver. Only the connection goes elsewhere:
the URL, the ``Host`` header, TLS SNI and the certificate check keep the name.

``CRAWLGRAPH_RESOLVE`` is a list of entries (on the command line one string,
entries separated by commas)::

    HOST:PORT:ADDRESS                curl's --resolve: connect to ADDRESS:PORT
    HOST:PORT:ADDRESS:CONNECT_PORT   and to another port (curl's --connect-to)

``scrapy crawl site -s CRAWLGRAPH_RESOLVE=www.example.org:443:10.0.0.5`` crawls
``https://www.example.org/`` on 10.0.0.5. PORT is the URL's port (80 and 443
when it gives none); ADDRESS is an IP address, an IPv6 one in brackets
(``[::1]``); repeat an entry for several addresses of one name. A name and
port without an entry resolve as usual. A malformed entry stops the crawl at
start with a `ConfigError` naming it.

`MappedResolver` is the Scrapy resolver doing it, switched on in
`crawler.settings` (``TWISTED_DNS_RESOLVER``); names without an entry go to
``CRAWLGRAPH_RESOLVER_FALLBACK`` [``scrapy.resolver.CachingThreadedResolver``,
Scrapy's default, with ``DNS_TIMEOUT``]: set that one, not
``TWISTED_DNS_RESOLVER``, to change how other names resolve. Scrapy installs
the resolver once per process, from the process's settings: give
``CRAWLGRAPH_RESOLVE`` with ``-s`` (or the project settings), not in a
spider's ``custom_settings``. The address guard (`crawler.middlewares.
addressguard`) checks a mapped name on its mapped address, through
`HostMap.from_settings` as well.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from scrapy.settings import BaseSettings
from scrapy.utils.misc import build_from_crawler, load_object
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IHostnameResolver,
    IHostResolution,
    IResolutionReceiver,
)
from zope.interface import implementer

from core.errors import ConfigError

SETTING = "CRAWLGRAPH_RESOLVE"
FALLBACK_SETTING = "CRAWLGRAPH_RESOLVER_FALLBACK"
DEFAULT_FALLBACK = "scrapy.resolver.CachingThreadedResolver"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORMAT_HINT = ("Write HOST:PORT:ADDRESS or HOST:PORT:ADDRESS:CONNECT_PORT, e.g. "
                "www.example.org:443:10.0.0.5 or example.test:80:127.0.0.1:8080 "
                "(an IPv6 address in brackets: [::1]).")
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


@dataclass(frozen=True)
class Target:
    """Where a mapped name and port connect: an IP address and a port."""

    address: str
    port: int


def normalize_host(host: str) -> str:
    """A host name as entries are keyed: lower case, no trailing dot, IDNA (ASCII) form."""
    host = host.strip().rstrip(".").lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    return host


def default_port(scheme: str) -> int:
    """The port a URL of this scheme means when it gives none (80 unless https)."""
    return _DEFAULT_PORTS.get(scheme.lower(), 80)


class HostMap:
    """The ``CRAWLGRAPH_RESOLVE`` entries: (host, port) -> the targets to connect to."""

    def __init__(self, entries: Iterable[tuple[str, int, Target]] = ()) -> None:
        self._targets: dict[tuple[str, int], list[Target]] = {}
        for host, port, target in entries:
            targets = self._targets.setdefault((normalize_host(host), port), [])
            if target not in targets:
                targets.append(target)

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> Self:
        """The map of these entries (a string: comma-separated). Raises ConfigError."""
        if isinstance(entries, str):
            entries = entries.split(",")
        return cls(parse_entry(e) for e in entries if e.strip())

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        """The map the ``CRAWLGRAPH_RESOLVE`` setting gives (empty when unset)."""
        return cls.parse(settings.getlist(SETTING))

    def lookup(self, host: str, port: int) -> list[Target] | None:
        """The targets of `host` and `port`, or None when they have no entry (as a name
        with no IDNA form has none)."""
        try:
            targets = self._targets.get((normalize_host(host), port))
        except UnicodeError:
            return None
        return list(targets) if targets else None

    def addresses(self, url: str) -> list[str] | None:
        """The mapped addresses of a URL's host and port, or None when it has no entry."""
        parts = urlsplit(url)
        try:
            port = parts.port or default_port(parts.scheme)
            targets = self.lookup(parts.hostname or "", port)
        except ValueError:  # a bad port: not ours to judge
            return None
        return None if targets is None else [t.address for t in targets]

    def __bool__(self) -> bool:
        return bool(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


def parse_entry(entry: str) -> tuple[str, int, Target]:
    """One ``HOST:PORT:ADDRESS[:CONNECT_PORT]`` entry as (host, port, target)."""
    text = entry.strip()

    def fail(why: str) -> ConfigError:
        return ConfigError(f"{SETTING} entry {text!r}: {why}.", hint=_FORMAT_HINT)

    host, sep, rest = text.partition(":")
    port_text, sep2, rest = rest.partition(":")
    if not (sep and sep2 and host and rest):
        raise fail("expected HOST:PORT:ADDRESS")
    if rest.startswith("["):
        address, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise fail("an IPv6 address ends with ']'")
        connect_text = tail[1:] if tail else None
    elif rest.count(":") > 1:
        raise fail("write an IPv6 address in brackets")
    else:
        address, colon, connect = rest.partition(":")
        connect_text = connect if colon else None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise fail(f"{address!r} is not an IP address") from None
    port = _port(port_text, fail)
    connect_port = port if connect_text is None else _port(connect_text, fail)
    try:
        name = normalize_host(host)
    except UnicodeError:
        name = ""
    if not _HOST.fullmatch(name):
        raise fail(f"{host!r} is not a host name")
    return name, port, Target(str(ip), connect_port)


def _port(text: str, fail: Callable[[str], ConfigError]) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise fail(f"{text!r} is not a port (1-65535)")
    return int(text)


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        """Nothing to cancel: a mapped name is answered at once."""


@implementer(IHostnameResolver)
class MappedResolver:
    """Scrapy resolver answering the names of ``CRAWLGRAPH_RESOLVE`` and delegating the rest."""

    def __init__(self, reactor: Any, hosts: HostMap, fallback: Any) -> None:
        self.reactor = reactor
        self.hosts = hosts
        self.fallback = fallback  # a Scrapy resolver: has install_on_reactor()
        self._next: IHostnameResolver | None = None

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> Self:
        # `crawler` is the CrawlerProcess: Scrapy builds the resolver once per process.
        fallback_cls = load_object(crawler.settings.get(FALLBACK_SETTING) or DEFAULT_FALLBACK)
        fallback = build_from_crawler(fallback_cls, crawler, reactor=reactor)
        return cls(reactor, HostMap.from_settings(crawler.settings), fallback)

    def install_on_reactor(self) -> None:
        self.fallback.install_on_reactor()
        if not self.hosts:
            return  # nothing mapped: the fallback alone, exactly as without us
        self._next = self.reactor.nameResolver
        self.reactor.installNameResolver(self)

    def resolveHostName(
        self, resolutionReceiver: IResolutionReceiver, hostName: str, portNumber: int = 0,
        addressTypes: Sequence[type[Any]] | None = None, transportSemantics: str = "TCP",
    ) -> IHostResolution:
        targets = self.hosts.lookup(hostName, portNumber)
        if targets is None:
            assert self._next is not None
            return self._next.resolveHostName(resolutionReceiver, hostName, portNumber,
                                              addressTypes, transportSemantics)
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        for target in targets:
            v6 = ":" in target.address
            if addressTypes is None or (IPv6Address if v6 else IPv4Address) in addressTypes:
                cls = IPv6Address if v6 else IPv4Address
                resolutionReceiver.addressResolved(cls("TCP", target.address, target.port))
        resolutionReceiver.resolutionComplete()
        return resolution
