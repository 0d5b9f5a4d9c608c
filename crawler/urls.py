"""URL canonicalization: one function, used everywhere a URL is stored, compared or queued.

The same URL written two ways must be one node of the link graph, so every
spider, middleware and the storage pipeline call `canonicalize` (and
`resolve` for hrefs) instead of comparing URLs as written.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonicalize(url: str) -> str:
    """The canonical form of an absolute http(s) URL.

    RFC 3986 normalisation plus the usual crawler rules: lower-case scheme and
    host, default port dropped, empty path made "/", dot segments resolved,
    unreserved characters decoded and the rest percent-encoded in upper case,
    query arguments sorted (blank values kept), fragment dropped.
    """
    url = canonicalize_url(url.strip(), keep_blank_values=True, keep_fragments=False)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # an out-of-range port: leave the netloc as written
        port = None
        host = parts.netloc.rsplit("@", 1)[-1].lower()
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += f":{parts.password}"
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def resolve(base_url: str, href: str) -> str | None:
    """Resolve an href against a page's base URL; None unless it is an http(s) URL."""
    href = href.strip()
    if not href:
        # An empty href is a link to the base URL itself (HTML's URL parsing).
        return canonicalize(base_url)
    try:
        absolute = urljoin(base_url, href)
    except ValueError:  # an href that does not parse, such as "http://[::1"
        return None
    scheme = absolute.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        return None
    try:
        # "http://:80/", "https://@" or "http:////x" name no host: no link anywhere.
        if not urlsplit(absolute).hostname:
            return None
        url = canonicalize(absolute)
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError:
        return None
    return url if parts.hostname else None


def host_key(url: str) -> str:
    """`host:port` of a URL (port always present): the unit of scope and politeness."""
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    return f"{(parts.hostname or '').rstrip('.')}:{port}"
