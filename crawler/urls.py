"""URL canonicalization: one function, used everywhere a URL is stored, compared or queued.

The same URL written two ways must be one node of the link graph, so every
spider, middleware and the storage pipeline call `canonicalize` (and
`resolve` for hrefs) instead of comparing URLs as written.

Session ids and tracking parameters are removed (`strip_params`, on by
default; the canonical-URL and pages spider middlewares pass
``CRAWLGRAPH_STRIP_SESSION_PARAMS``, so that it governs the requests and
what is stored alike). The list is conservative on purpose:
stripping a parameter that selects content merges distinct pages into one,
a loss nothing later can undo, while keeping a session parameter only costs
duplicate fetches, which the trap limits bound
(`crawler.spidermiddlewares.traps`). So only names that mean a session or a
click tracker on every site are removed: the servlet, PHP, classic ASP and
ColdFusion session ids and the analytics and ad click ids (`SESSION_PARAMS`,
`SESSION_PARAM_PREFIXES`); the Java servlet's `;jsessionid=` path parameter
too. Generic names (`sid`, `session`, `s`, `ref`, `source`) are kept: `sid`
is a story, site or search id on many sites (and phpBB's session id, which
a forum crawl would need the trap limits for).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Query parameters removed by `canonicalize` (names compared in lower case).
SESSION_PARAMS = frozenset({
    # session ids: Java servlets, PHP, ColdFusion
    "jsessionid", "phpsessid", "cfid", "cftoken",
    # click and campaign trackers: Google, Meta, Microsoft, Mailchimp, HubSpot,
    # Marketo, Yandex, Instagram
    "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "_ga", "_gl", "fbclid", "msclkid",
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "yclid", "igshid",
})
#: Prefixes of removed query parameters: Google Analytics' campaign tags and
#: classic ASP's session cookie (`ASPSESSIONIDQQGGQGPA`: its suffix varies).
SESSION_PARAM_PREFIXES = ("utm_", "aspsessionid")
# `;jsessionid=...` in a path segment (servlet URL rewriting), up to the next / or ;.
_PATH_SESSION = re.compile(r";jsessionid=[^/;]*", re.IGNORECASE)


def _session_param(pair: str) -> bool:
    name = unquote_plus(pair.split("=", 1)[0]).lower()
    return name in SESSION_PARAMS or name.startswith(SESSION_PARAM_PREFIXES)


def _strip_session(url: str) -> str:
    """`url` (canonical) without its session and tracking parameters."""
    parts = urlsplit(url)
    path = _PATH_SESSION.sub("", parts.path) or "/"
    query = "&".join(p for p in parts.query.split("&") if p and not _session_param(p))
    if path == parts.path and query == parts.query:
        return url
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


# A crawl canonicalizes a URL several times (a page's links, the requests made of them,
# the pages they answer), and a site's pages link the same URLs: the recent ones are kept.
@lru_cache(maxsize=8192)
def canonicalize(url: str, *, strip_params: bool = True) -> str:
    """The canonical form of an absolute http(s) URL.

    RFC 3986 normalisation plus the usual crawler rules: lower-case scheme and
    host, default port dropped, empty path made "/", dot segments resolved,
    unreserved characters decoded and the rest percent-encoded in upper case,
    query arguments sorted (blank values kept), fragment dropped; with
    `strip_params`, session ids and tracking parameters removed (see the
    module docstring).

    >>> canonicalize("http://h/a;jsessionid=1F?utm_source=x&id=2")
    'http://h/a?id=2'
    """
    url = _canonical(url)
    return strip_session_params(url) if strip_params else url


def strip_session_params(url: str) -> str:
    """A canonical URL (`canonicalize` without `strip_params`) without its session and
    tracking parameters: `canonicalize(url)`, but not canonicalizing `url` once more."""
    stripped = _strip_session(url)
    # Once more if something went: `/x/..;jsessionid=1/y` has a dot segment only now.
    return url if stripped == url else _canonical(stripped)


def _canonical(url: str) -> str:
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


def resolve(base_url: str, href: str, *, strip_params: bool = True) -> str | None:
    """Resolve an href against a page's base URL; None unless it is an http(s) URL.

    The URL is canonical (`canonicalize`, with `strip_params`).
    """
    href = href.strip()
    if not href:
        # An empty href is a link to the base URL itself (HTML's URL parsing).
        return canonicalize(base_url, strip_params=strip_params)
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
        url = canonicalize(absolute, strip_params=strip_params)
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
