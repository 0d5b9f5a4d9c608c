"""User-agent rotation: each request presents a realistic browser, with matching headers.

A pool of profiles (User-Agent plus the Accept, Accept-Language and
Accept-Encoding headers that browser sends) is used in turn per request, or
sticky per host (`CRAWLGRAPH_USER_AGENT_MODE = "host"`, so a site sees one
consistent visitor). `CRAWLGRAPH_USER_AGENTS` replaces the pool: a list of
strings (default headers) or of dicts `{"User-Agent": ..., "Accept": ...}`.
The robots.txt product token is not the User-Agent: it stays
`CRAWLGRAPH_ROBOTS_TOKEN` (see `crawler.middlewares.robots`).

On by default; `CRAWLGRAPH_USER_AGENT_ROTATION = False` turns it off (Scrapy's
`USER_AGENT` is then sent). A request with its own User-Agent header keeps it.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler.urls import host_key

_HTML_ACCEPT_CHROME = ("text/html,application/xhtml+xml,application/xml;q=0.9,"
                       "image/avif,image/webp,image/apng,*/*;q=0.8")
_HTML_ACCEPT_FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Only encodings Scrapy decodes without optional packages.
_ENCODING = "gzip, deflate"

DEFAULT_PROFILES: list[dict[str, str]] = [
    {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/130.0.0.0 Safari/537.36",
     "Accept": _HTML_ACCEPT_CHROME, "Accept-Language": "en-US,en;q=0.9"},
    {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, "
                   "like Gecko) Chrome/129.0.0.0 Safari/537.36",
     "Accept": _HTML_ACCEPT_CHROME, "Accept-Language": "en-GB,en;q=0.9"},
    {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
     "Accept": _HTML_ACCEPT_FIREFOX, "Accept-Language": "en-US,en;q=0.5"},
    {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 "
                   "Firefox/131.0",
     "Accept": _HTML_ACCEPT_FIREFOX, "Accept-Language": "de-DE,de;q=0.8,en-US;q=0.5,en;q=0.3"},
    {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                   "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
     "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
     "Accept-Language": "en-US,en;q=0.9"},
    {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
     "Accept": _HTML_ACCEPT_CHROME, "Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"},
]


def _profile(entry: str | dict[str, Any]) -> dict[str, str]:
    if isinstance(entry, str):
        entry = {"User-Agent": entry}
    if not entry.get("User-Agent"):
        raise ValueError("every CRAWLGRAPH_USER_AGENTS entry needs a User-Agent")
    profile = {"Accept": _HTML_ACCEPT_FIREFOX, "Accept-Language": "en-US,en;q=0.9"}
    profile.update({str(k): str(v) for k, v in entry.items()})
    profile.setdefault("Accept-Encoding", _ENCODING)
    return profile


class UserAgentRotationMiddleware:
    """Downloader middleware setting User-Agent and its companion headers from a pool."""

    def __init__(self, profiles: list[dict[str, str]], mode: str, seed: int | None = None) -> None:
        if mode not in ("request", "host"):
            raise ValueError(
                f"CRAWLGRAPH_USER_AGENT_MODE must be 'request' or 'host', not {mode!r}")
        self.profiles = profiles
        self.mode = mode
        self._rng = random.Random(seed)
        # Start at a random place so two workers do not present the same sequence.
        self._cycle = itertools.cycle(self._rng.sample(profiles, len(profiles)))
        self._sticky: dict[str, dict[str, str]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("CRAWLGRAPH_USER_AGENT_ROTATION", True):
            raise NotConfigured("user-agent rotation is off")
        entries = settings.getlist("CRAWLGRAPH_USER_AGENTS") or DEFAULT_PROFILES
        return cls([_profile(e) for e in entries],
                   settings.get("CRAWLGRAPH_USER_AGENT_MODE", "request"))

    def process_request(self, request: Request) -> None:
        if request.meta.get("crawlgraph_user_agent_set"):
            return  # a retry or redirect keeps the identity it had
        if self.mode == "host":
            key = host_key(request.url)
            profile = self._sticky.get(key)
            if profile is None:
                profile = self._sticky[key] = next(self._cycle)
        else:
            profile = next(self._cycle)
        # Scrapy's own UserAgentMiddleware is off (crawler.settings), so a User-Agent
        # present here was set by the spider on purpose.
        user_set = b"User-Agent" in request.headers
        for name, value in profile.items():
            if name == "User-Agent" and user_set:
                continue
            request.headers[name] = value  # replaces Scrapy's defaults
        request.meta["crawlgraph_user_agent_set"] = True
