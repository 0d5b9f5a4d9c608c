"""The API's bodies: one msgspec Struct per purpose.

Request bodies are `kw_only` and `forbid_unknown_fields`: a misspelt field is a
422 naming it, never silently ignored. Limits that a type can express live in
`Meta`; checks that need more (the private-address guard, the settings
allow-list) are in `jobapi.services`. A job's crawl parameters are the
spiders' own (`crawler.spiders.args.CrawlParams`): `JobCreate` inherits them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from crawler.spiders.args import MAX_START_URLS, CrawlParams, RenderMode, Url

JobStatus = Literal["pending", "running", "paused", "finished", "failed", "cancelled"]
Role = Literal["user", "admin"]

Domain = Annotated[
    str,
    Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
         description="A host name, optionally with its port (`127.0.0.1:8080`)."),
]
Tag = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                          description="Letters, digits and `_ . : -` only.")]
SpiderName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$",
                                 description="A spider's name: letters, digits and `_`.")]
Username = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$",
                               description="Letters, digits and `_ . @ -` only.")]
# Characters, not bytes: the 72-byte bcrypt limit is checked on the encoded
# password so that a long one gets its own clear 400.
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
NewPassword = Annotated[str, Meta(min_length=8, max_length=1024, pattern=r"^[^\x00]*$",
                                  description="A password without NUL characters.")]
SettingValue = str | int | float | bool


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body: unknown fields are refused."""


class _Out(msgspec.Struct, kw_only=True):
    """A response body."""


# --- errors ---------------------------------------------------------------


class ErrorDetail(_Out, kw_only=True):
    code: str
    message: str
    hint: str | None = None
    field: str | None = None
    request_id: str | None = None


class ErrorResponse(_Out, kw_only=True):
    """The one error shape of every non-2xx answer."""

    error: ErrorDetail


# --- auth and users ---------------------------------------------------------


class TokenRequest(_Body, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: Password


class TokenResponse(_Out, kw_only=True):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class User(_Out, kw_only=True):
    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserCreate(_Body, kw_only=True, forbid_unknown_fields=True):
    username: Username
    password: NewPassword
    role: Role = "user"


class UserUpdate(_Body, kw_only=True, forbid_unknown_fields=True):
    password: NewPassword | None = None
    role: Role | None = None
    disabled: bool | None = None


class UserList(_Out, kw_only=True):
    items: list[User]


# --- jobs ---------------------------------------------------------------------


class JobCreate(CrawlParams, kw_only=True, forbid_unknown_fields=True):
    """A job: the crawl parameters every spider takes, and the job's own fields.

    Three crawl parameters are narrower in a request body than for a spider:
    at least one start URL; allowed domains are host names, at most 200 (the
    list travels as one command-line argument, 128 KiB at most); `render_js`
    also takes a boolean.
    """

    start_urls: Annotated[list[Url], Meta(min_length=1, max_length=MAX_START_URLS)]
    allowed_domains: Annotated[list[Domain], Meta(max_length=200)] = []
    render_js: Annotated[
        bool | RenderMode,
        Meta(description="Render pages in Chromium: true or `always`, `auto` (when a page "
                         "looks built by scripts), false or `never`."),
    ] = False
    spider: SpiderName = "site"
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    priority: Annotated[int, Meta(ge=-100, le=100)] = 0
    tags: Annotated[list[Tag], Meta(max_length=32)] = []
    settings: Annotated[
        dict[Annotated[str, Meta(max_length=64)], SettingValue],
        Meta(max_length=32, description="Scrapy settings overrides from the allow-list "
                                        "(see the API description)."),
    ] = {}


class ScrapydJobRef(_Out, kw_only=True):
    node: int
    jobid: str


class Job(_Out, kw_only=True):
    id: uuid.UUID
    owner_id: int
    spider: str
    status: JobStatus
    params: dict[str, Any]
    settings: dict[str, Any]
    tags: list[str]
    priority: int
    workers: int
    scrapyd_jobs: list[ScrapydJobRef]
    stats: dict[str, Any]
    frontier: dict[str, Any] | None = None
    close_reason: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobList(_Out, kw_only=True):
    items: list[Job]
    next_cursor: str | None = None


class ErrorCount(_Out, kw_only=True):
    """Failed fetches of one cause: `dns`, `refused`, `timeout`, `tls` ... or `http_404`."""

    cause: str
    meaning: str
    count: int
    example_url: str
    example_error: str | None = None


class RobotsCount(_Out, kw_only=True):
    """URLs robots.txt kept the crawl from: `disallowed` by a rule, or `unavailable`."""

    decision: str
    robots_status: int | None = None
    count: int
    example_url: str


class EventCount(_Out, kw_only=True):
    """Crawl events of one kind (a block signal, a download cut off, a trap cut ...)."""

    kind: str
    count: int
    example_url: str | None = None
    detail: str = ""


class CapNotice(_Out, kw_only=True):
    """The page cap ended the crawl: the graph is cut, and how to lift the cap."""

    max_pages: int
    message: str
    command: str


class SiteSummary(_Out, kw_only=True):
    """One site of a job: its stored pages by status class, its errors, its robots.txt.

    `robots` is the worst that robots.txt did to the site: `allowed` (it kept
    nothing out, or there was none), `disallowed` (its rules kept URLs out),
    `error` (it answered 5xx, so every URL was kept out meanwhile),
    `unreachable` (it could not be fetched, so the site's requests failed), or
    `not_obeyed` (the job ignores robots.txt). `robots_kept_out`: URLs it kept out.
    """

    site: str
    pages: int
    pages_by_status: dict[str, int]
    errors: int
    robots: str
    robots_kept_out: int = 0


class ProcessLog(_Out, kw_only=True):
    """The tail of one crawler process's log, as the crawler wrote it."""

    node: int
    jobid: str
    text: str | None  # None: this process has no log (yet)
    truncated: bool  # only the tail is here


class JobLog(_Out, kw_only=True):
    processes: list[ProcessLog]


class JobSummary(_Out, kw_only=True):
    """What a job fetched, what failed and why, what it was kept from, and whether it is cut.

    `sites` is the per-site table, the most pages first (cut to the `sites`
    query parameter); `site_count` is how many sites there are in all (None
    when the table was left out with `sites=0`).
    """

    job_id: uuid.UUID
    status: JobStatus
    close_reason: str | None = None
    error: str | None = None
    pages: int
    pages_by_status: dict[str, int]
    errors: list[ErrorCount]
    robots: list[RobotsCount]
    events: list[EventCount]
    offsite_links: int
    #: Redirect hops followed: not pages of their own, each lands on a page counted above.
    redirects: int = 0
    #: A recrawl's pages against the job it recrawls: new, changed, unchanged, gone.
    changes: dict[str, int] | None = None
    cap: CapNotice | None = None
    sites: list[SiteSummary] = []
    site_count: int | None = None


class Page(_Out, kw_only=True):
    url: str
    final_url: str
    status: int
    content_type: str | None = None
    title: str | None = None
    depth: int
    fetched_at: datetime
    size: int
    content_hash: str | None = None
    elapsed_ms: int | None = None
    rendered: bool
    error: str | None = None
    #: The validators the server sent, and a recrawl's mark (README, "Recrawls").
    etag: str | None = None
    last_modified: str | None = None
    change: Literal["new", "changed", "unchanged"] | None = None


class PageList(_Out, kw_only=True):
    items: list[Page]
    next_cursor: str | None = None


class Link(_Out, kw_only=True):
    source_url: str
    target_url: str
    count: int
    anchor_text: str
    nofollow: bool


class LinkList(_Out, kw_only=True):
    items: list[Link]
    next_cursor: str | None = None


class Item(_Out, kw_only=True):
    fingerprint: str
    item_type: str
    url: str | None = None
    data: Any
    created_at: datetime


class ItemList(_Out, kw_only=True):
    items: list[Item]
    next_cursor: str | None = None


class JobEvent(_Out, kw_only=True):
    """One Server-Sent Event of `GET /jobs/{id}/events` (event type `state`)."""

    id: uuid.UUID
    status: JobStatus
    stats: dict[str, Any]
    frontier: dict[str, Any] | None = None
    error: str | None = None
    close_reason: str | None = None


# --- spiders, health ----------------------------------------------------------


class SpiderArgument(_Out, kw_only=True):
    name: str
    type: str
    required: bool
    default: Any = None
    help: str | None = None  # what the argument does, for a form or a --help


class Spider(_Out, kw_only=True):
    name: str
    description: str | None = None
    arguments: list[SpiderArgument]


class SpiderList(_Out, kw_only=True):
    items: list[Spider]


class Check(_Out, kw_only=True):
    ok: bool
    latency_ms: float
    detail: str | None = None


class Health(_Out, kw_only=True):
    status: Literal["ok", "degraded"]
    checks: dict[str, Check]
