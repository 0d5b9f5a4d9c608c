"""Hosts and registered domains of URLs, offline.

The registered domain is `core.domains.registered_domain` (the Public Suffix
List bundled with `publicsuffixlist`; the crawler's `domain` scope uses the same
function). These functions run once per distinct URL or host, never per link.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from core.domains import registered_domain

_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """The host of a URL, lowercased, with its port when it is not the scheme's default.

    >>> host_of("https://WWW.Example.org:443/a?b")
    'www.example.org'
    >>> host_of("http://127.0.0.1:8801/x")
    '127.0.0.1:8801'
    """
    try:
        parts = urlsplit(url)
        hostname = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        # An unparsable port or bracket: keep the raw authority rather than drop the page.
        return url.split("/", 3)[2].lower() if url.count("/") >= 2 else url
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        if ":" in hostname:  # IPv6 literal
            return f"[{hostname}]:{port}"
        return f"{hostname}:{port}"
    return f"[{hostname}]" if ":" in hostname else hostname


def hosts_of(urls: Sequence[str]) -> np.ndarray:
    """`host_of` for each URL, as a numpy str array."""
    return np.array([host_of(url) for url in urls], dtype=str) if len(urls) else np.array([], str)


def domains_of(hosts: Sequence[str]) -> np.ndarray:
    """`registered_domain` for each host, as a numpy str array."""
    if not len(hosts):
        return np.array([], dtype=str)
    return np.array([registered_domain(str(h)) for h in hosts], dtype=str)
