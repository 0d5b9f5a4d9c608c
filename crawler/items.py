"""The items crawlgraph stores in their own tables: `Page`, `Link` and `Redirect`.

All are dataclasses, so every Scrapy component that speaks itemadapter handles
them; `crawler.pipelines` validates them with msgspec before storage. Any other
item a spider yields (dict, dataclass, attrs, Scrapy `Item`) is stored in the
`items` table as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Discovery = Literal["start", "link", "sitemap"]
#: How a page of a recrawl compares with the crawl it recrawls (`pages.change`).
Change = Literal["new", "changed", "unchanged"]
#: The longest `Page.canonical_url` stored (the column's bound, the crawl's URL limit).
MAX_CANONICAL_LENGTH = 2048
#: The longest `Page.etag` and `Page.last_modified` stored (the columns' bounds).
MAX_ETAG_LENGTH = 512
MAX_LAST_MODIFIED_LENGTH = 64


@dataclass(slots=True, kw_only=True)
class Page:
    """One fetched page (a row of `pages`)."""

    url: str
    final_url: str
    status: int
    fetched_at: datetime
    content_type: str | None = None
    title: str | None = None
    depth: int = 0
    size: int = 0
    content_hash: str | None = None
    elapsed_ms: int | None = None
    rendered: bool = False
    error: str | None = None
    #: How the crawl first reached `url`: a start URL, a link of a page, a sitemap.
    discovered: Discovery | None = None
    #: The canonical URL the page declares (`<link rel="canonical">` or a `Link`
    #: header; `crawler.spiders.links.declared_canonical`), None if none.
    canonical_url: str | None = None
    #: The validators the server sent (`ETag`, `Last-Modified`), for the next recrawl.
    etag: str | None = None
    last_modified: str | None = None
    #: Against the crawl this job recrawls (None: the job recrawls nothing).
    change: Change | None = None


@dataclass(slots=True, kw_only=True)
class Link:
    """A hyperlink from one page to another (a row of `links`).

    `count` is how many anchors on the source page point at the target; a
    spider yields one `Link` per (source, target) pair of a page.
    """

    source_url: str
    target_url: str
    anchor_text: str = ""
    nofollow: bool = False
    count: int = 1


@dataclass(slots=True, kw_only=True)
class Redirect:
    """A redirect hop (a row of `redirects`): fetching `url` led to `target_url`.

    `status` is the redirect's HTTP status (301, 302, 303, 307, 308), None for
    a `<meta http-equiv="refresh">`.
    """

    url: str
    target_url: str
    status: int | None = None
