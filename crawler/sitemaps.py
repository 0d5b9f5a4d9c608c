"""Sitemaps (sitemaps.org): the URLs a site lists, read with Scrapy's parser.

`read_sitemap(body)` turns one fetched sitemap file into a `SitemapFile`:
whether it is an index (its URLs are more sitemaps) or a URL set (its URLs
are pages), and its `<loc>` URLs, at most `MAX_URLS` (the rest are counted in
`cut`, not read). A gzipped file is gunzipped with Scrapy's `gunzip`, bounded
to `MAX_BYTES` uncompressed like a plain one; a file over that is refused
(`too_big`), so a gzip bomb costs at most that much memory. Parsing is
Scrapy's `scrapy.utils.sitemap.Sitemap` (lxml, `resolve_entities=False`: an
external entity is never fetched nor expanded, `recover=True`: a broken file
gives what it has up to the break).

Nothing here fetches: the `site` spider requests the files
(`crawler.spiders.site`) and this module only reads them. It also names the
two request meta keys the crawl uses for them: `SITEMAP_META` marks a sitemap
file's request (its response is no page), `DISCOVERED_META` says how a
page's URL was found (`discovery`, stored in the Page's `discovered`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

from crawler.items import Discovery
from crawler.urls import resolve

#: The sitemaps.org limits of one file: URLs, and bytes uncompressed.
MAX_URLS = 50_000
MAX_BYTES = 50 * 1024 * 1024

#: Request meta: how the URL was found (`crawler.items.Discovery`); absent: by depth.
DISCOVERED_META = "crawlgraph_discovered"
#: Request meta: the response is a sitemap file, not a page (no Page, no Links);
#: its value is the file's nesting level (1: named by robots.txt or /sitemap.xml).
SITEMAP_META = "crawlgraph_sitemap"

Kind = Literal["index", "urlset", "none"]
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class SitemapFile:
    """What one sitemap file lists."""

    kind: Kind
    urls: list[str] = field(default_factory=list)
    #: `<loc>` entries past `MAX_URLS`, not read.
    cut: int = 0
    #: The file is over `MAX_BYTES` uncompressed and was not read.
    too_big: bool = False


def discovery(meta: dict[str, Any]) -> Discovery:
    """How the crawl reached a request's URL: its `DISCOVERED_META`, else by depth.

    Depth 0 is a start URL (or a frontier seed); deeper, a link of a page.
    """
    found = meta.get(DISCOVERED_META)
    if found in ("start", "link", "sitemap"):
        return found
    return "start" if meta.get("depth", 0) == 0 else "link"


def unpacked(body: bytes, max_bytes: int = MAX_BYTES) -> bytes | None:
    """The sitemap's XML: `body` gunzipped if it is gzip; None if over `max_bytes`."""
    if body[:2] == _GZIP_MAGIC:
        try:
            return gunzip(body, max_size=max_bytes)
        except ValueError:  # Scrapy's _DecompressionMaxSizeExceeded
            return None
        except OSError:  # not gzip after all (a broken file): read it as it is
            pass
    return body if len(body) <= max_bytes else None


def read_sitemap(body: bytes, base_url: str, *, max_urls: int = MAX_URLS,
                 max_bytes: int = MAX_BYTES) -> SitemapFile:
    """The kind and `<loc>` URLs of one sitemap file (see the module docstring).

    Locations are resolved against `base_url` and made canonical; one that is
    not an http(s) URL is left out.
    """
    xml = unpacked(body, max_bytes)
    if xml is None:
        return SitemapFile("none", too_big=True)
    if not xml.strip():
        return SitemapFile("none")
    try:
        sitemap = Sitemap(xml)
    except Exception:  # lxml raises several types for what is not XML at all
        return SitemapFile("none")
    kind: Kind = {"sitemapindex": "index", "urlset": "urlset"}.get(sitemap.type, "none")
    out = SitemapFile(kind)
    if kind == "none":
        return out
    try:
        for entry in sitemap:
            loc = entry.get("loc")
            url = resolve(base_url, loc) if loc else None
            if url is None:
                continue
            if len(out.urls) < max_urls:
                out.urls.append(url)
            else:
                out.cut += 1
    except Exception:  # a broken tail: keep what was read before it
        pass
    return out
