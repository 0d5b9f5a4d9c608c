"""Registered domains of host names, offline, from the Public Suffix List.

The list is the one bundled with the `publicsuffixlist` package, ICANN and
private sections both (`user.github.io` is its own domain). The crawler's
scope (`crawler.spidermiddlewares.scope`) and the domain level of the graphs
(`graphs.domains`) use these same functions, so that a crawl scoped to a
domain and a domain node of its graph mean one thing.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def registered_domain(host: str) -> str:
    """The registered domain of a host (`name`, `name:port` or `[v6]:port`), port dropped.

    An IP address, a public suffix or a single-label host such as `localhost`
    is its own domain.

    >>> registered_domain("news.bbc.co.uk")
    'bbc.co.uk'
    >>> registered_domain("127.0.0.1:8801")
    '127.0.0.1'
    """
    name = host
    if name.startswith("["):
        return name[1:].split("]", 1)[0]
    name = name.rsplit(":", 1)[0] if ":" in name else name
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    return _psl().privatesuffix(name) or name


def is_public_suffix(name: str) -> bool:
    """Whether a host name is a public suffix (`co.uk`, `github.io`, an unlisted TLD).

    >>> is_public_suffix("co.uk"), is_public_suffix("bbc.co.uk")
    (True, False)
    """
    return bool(_psl().is_public(name))
