"""The crawl's scope as a rule: which URLs a job's `scope` takes (`Scope`).

`crawler.spidermiddlewares.scope` applies it to the requests of callbacks and
says what each `scope` value means; `crawler.spidermiddlewares.scopeshare`
keeps what the workers of one job learn (start URLs' redirect targets) in
Redis, so that they all judge alike.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from core.domains import is_public_suffix, registered_domain
from crawler.spiders.args import CrawlParams, ScopeKind
from crawler.urls import canonicalize

Origin = tuple[str, int]  # (host, port): the port always given

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> Origin | None:
    """(host, port) of an http(s) URL; None for another scheme or a URL without a host."""
    try:
        parts = urlsplit(url)
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if default is None:
            return None
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or default
    except ValueError:  # a port that is no number, or out of range
        return None
    return (host, port) if host else None


def canonical_or_none(url: str) -> str | None:
    """The canonical form of a URL, None if it has none (a port out of range)."""
    try:
        return canonicalize(url)
    except ValueError:
        return None


def _rest(url: str) -> str:
    """What follows the origin of a URL: path and query."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def site_names(host: str) -> tuple[str, ...]:
    """The names of a host's site: with and without `www.` (see the module docstring).

    >>> site_names("www.example.co.uk"), site_names("127.0.0.1"), site_names("co.uk")
    (('example.co.uk', 'www.example.co.uk'), ('127.0.0.1',), ('co.uk',))
    """
    if _is_ip(host):
        return (host,)
    bare = host[4:] if host.startswith("www.") and not is_public_suffix(host[4:]) else host
    return (bare,) if is_public_suffix(bare) else (bare, "www." + bare)


def site_origins(origin: Origin) -> set[Origin]:
    """The origins of the site of `origin`: its names on 80, 443 and its own port."""
    host, port = origin
    return {(name, p) for name in site_names(host) for p in {80, 443, port}}


@lru_cache(maxsize=65536)
def domain_of(host: str) -> str:
    """The registered domain of a host name (an IP address is its own)."""
    return registered_domain(f"[{host}]" if ":" in host else host)


class Scope:
    """The URLs a crawl may fetch; `url in scope` tells (URLs canonical).

    `decide(url)` says why a URL is out (None: it is in); `learn(url)` adds a
    start URL's redirect target under the rule of the module docstring.
    """

    def __init__(self, start_urls: Iterable[str], allowed_domains: Iterable[str] = (),
                 include: Iterable[str] = (), exclude: Iterable[str] = (), *,
                 kind: ScopeKind = "site") -> None:
        self.kind: ScopeKind = kind
        self.allowed = [d.lower().rstrip(".") for d in allowed_domains]
        self.include = [re.compile(p) for p in include]
        self.exclude = [re.compile(p) for p in exclude]
        self._origins: set[Origin] = set()
        self._domains: set[str] = set()
        self._prefixes: dict[Origin, tuple[str, ...]] = {}
        starts = [canonical_or_none(u) for u in start_urls]
        self.start_urls = frozenset(u for u in starts if u is not None and _origin(u))
        for url in self.start_urls:
            self._add(url)
        #: Start URLs' redirect targets added to the scope, in the order learned.
        self.learned: list[str] = []
        # With allowed_domains as the host part, only prefixes still come from URLs.
        self._kind_applies = not self.allowed or (kind == "prefix" and bool(self._prefixes))
        self.learns = kind != "host" and (not self.allowed or kind == "prefix")

    @classmethod
    def of(cls, params: CrawlParams) -> Scope:
        """The scope a job's parameters describe."""
        return cls(params.start_urls, params.allowed_domains, params.include, params.exclude,
                   kind=params.scope)

    def __contains__(self, url: str) -> bool:
        return self.decide(url) is None

    def decide(self, url: str) -> str | None:
        """None if `url` is in scope, else why not (the stat's last part)."""
        origin = _origin(url)
        if origin is None:
            return "scheme"
        if self.allowed and not self._allowed(origin):
            return "allowed_domains"
        if self._kind_applies and not self._in_kind(url, origin):
            return self.kind
        if self.include and not any(p.search(url) for p in self.include):
            return "include"
        if any(p.search(url) for p in self.exclude):
            return "exclude"
        return None

    def learn(self, url: str) -> bool:
        """Add a start URL's redirect target; whether the scope grew (always False for `host`)."""
        canonical = canonical_or_none(url)
        origin = _origin(canonical) if canonical is not None else None
        if not self.learns or origin is None or self._in_kind(canonical, origin):
            return False
        url = canonical
        self._add(url)
        self._kind_applies = True  # (with allowed_domains only a prefix is learned)
        self.learned.append(url)
        return True

    def _add(self, url: str) -> None:
        origin = _origin(url)
        assert origin is not None
        if self.kind == "host":
            self._origins.add(origin)
        elif self.kind == "site":
            self._origins |= site_origins(origin)
        elif self.kind == "domain":
            self._domains.add(domain_of(origin[0]))
        else:
            rest = _rest(url)
            for o in site_origins(origin):
                self._prefixes[o] = (*self._prefixes.get(o, ()), rest)

    def _in_kind(self, url: str, origin: Origin) -> bool:
        if self.kind in ("site", "host"):
            return origin in self._origins
        if self.kind == "domain":
            return domain_of(origin[0]) in self._domains
        rests = self._prefixes.get(origin)
        return rests is not None and _rest(url).startswith(rests)

    def _allowed(self, origin: Origin) -> bool:
        host, port = origin
        key = f"{host}:{port}"
        return any(host == d or host.endswith("." + d) or key == d for d in self.allowed)
