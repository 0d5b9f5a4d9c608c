"""The arguments of every kit spider: the crawl parameters of a job, defined once.

`CrawlParams` holds the crawl parameters with their types, limits and
defaults; the job API's `JobCreate` (`jobapi.schemas`) inherits them and adds
the job's own fields (spider, workers, tags, settings). `SpiderArgs` is what a
spider takes: the same parameters plus `job_id`, with the checks that need
more than a type (regular expressions compile, the CSS selector parses).

scrapyd passes spider arguments as strings; `parse_args` converts them
(numbers, booleans, JSON lists, or a single plain value for a list) and names
the bad parameter in its error.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
from msgspec import Meta

MAX_START_URLS = 10_000
MAX_URL_LENGTH = 2048

# No control characters: PostgreSQL cannot store NUL, and none belongs in these.
Printable = r"^[^\x00-\x1f\x7f]*$"
Url = Annotated[
    str,
    Meta(min_length=8, max_length=MAX_URL_LENGTH,
         pattern=r"^[hH][tT][tT][pP][sS]?://[^\s\x00-\x1f\x7f]+$",
         description="An absolute http or https URL.", examples=["https://example.org/"]),
]
Pattern = Annotated[str, Meta(min_length=1, max_length=512, pattern=Printable,
                              description="A regular expression, without control characters.")]
RenderMode = Literal["never", "always", "auto"]
# What the start URLs stand for (`crawler.spidermiddlewares.scope`).
ScopeKind = Literal["site", "host", "domain", "prefix"]

#: A job id (a UUID), as `recrawl_of` takes it.
JobId = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
JobRef = Annotated[str, Meta(pattern=JobId, description="A job's id (a UUID).")]
_AT_FIELD = re.compile(r"^(.*?) - at `\$\.(\w+)([^`]*)`$")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")


class CrawlParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The crawl parameters of a job (README, "Arguments").

    The job API narrows three of them for a request body: `start_urls` is
    required there, `allowed_domains` are host names of a limited list, and
    `render_js` also takes a boolean. A spider may get an empty `start_urls`
    (a long list reaches it through the frontier only) and the hosts of the
    start URLs as `allowed_domains`.
    """

    start_urls: Annotated[list[Url], Meta(
        max_length=MAX_START_URLS, description="Where the crawl starts: http(s) URLs.")] = []
    max_pages: Annotated[int, Meta(ge=1, le=100_000_000, description=(
        "Stop after this many pages; empty for no cap."))] | None = None
    max_depth: Annotated[int, Meta(ge=0, le=1000, description=(
        "Follow links at most this many steps from a start URL; empty for no limit."))] \
        | None = None
    scope: Annotated[ScopeKind, Meta(description=(
        "Which links to follow: the start URL's site, host, registered domain, or URL "
        "prefix."))] = "site"
    allowed_domains: Annotated[list[str], Meta(description=(
        "Host names the crawl may also visit."))] = []
    include: Annotated[list[Pattern], Meta(max_length=100, description=(
        "Regular expressions: only URLs matching one are followed."))] = []
    exclude: Annotated[list[Pattern], Meta(max_length=100, description=(
        "Regular expressions: URLs matching one are not followed."))] = []
    follow_nofollow: Annotated[bool, Meta(description=(
        "Also follow links marked rel=nofollow."))] = False
    render_js: Annotated[RenderMode, Meta(description=(
        "Render pages in Chromium: never, always, or auto (when a page looks built by "
        "scripts)."))] = "never"
    render_selector: Annotated[str, Meta(
        min_length=1, max_length=512, pattern=Printable,
        description="With rendering: wait for this CSS selector.")] | None = None
    obey_robots: Annotated[bool, Meta(description="Respect robots.txt.")] = True
    sitemaps: Annotated[bool, Meta(description=(
        "Also take URLs from the start sites' sitemaps."))] = False
    #: `crawler.middlewares.warc`.
    warc: Annotated[bool, Meta(description=(
        "Archive every request and response as WARC files."))] = False
    #: `crawler.middlewares.conditional`.
    recrawl_of: Annotated[JobRef, Meta(description=(
        "The job this one recrawls: pages unchanged since it are not downloaded again, "
        "and every page is marked new, changed or unchanged."))] | None = None


class SpiderArgs(CrawlParams, kw_only=True, forbid_unknown_fields=True):
    """The arguments (job parameters) every crawlgraph spider takes.

    scrapyd passes them as strings: numbers and booleans are converted, lists
    are JSON arrays (a single URL or pattern may be given as a plain string).
    """

    job_id: str | None = None

    def __post_init__(self) -> None:
        if self.job_id is not None:
            try:
                uuid.UUID(self.job_id)
            except ValueError:
                raise ValueError(f"job_id: not a UUID: {self.job_id!r}") from None
        for url in self.start_urls:
            if not re.match(r"^https?://[^/?#\s]+", url, re.IGNORECASE):
                raise ValueError(f"start_urls: not an absolute http(s) URL: {url!r}")
        for name in ("include", "exclude"):
            for pattern in getattr(self, name):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{name}: invalid regular expression {pattern!r}: {exc}") from None
        for domain in self.allowed_domains:
            if not domain or "/" in domain or " " in domain:
                raise ValueError(f"allowed_domains: not a host name: {domain!r}")
        if self.render_selector:
            from parsel import Selector

            try:
                Selector(text="<p></p>").css(self.render_selector)
            except Exception as exc:  # cssselect raises several error types
                raise ValueError(
                    f"render_selector: invalid CSS selector {self.render_selector!r}: {exc}"
                ) from None


class SpiderArgumentError(ValueError):
    """A spider argument (job parameter) is invalid; the message names it."""


def _is_list(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return get_origin(tp) is list or any(get_origin(a) is list for a in get_args(tp))


def parse_args(args_type: type[msgspec.Struct], raw: dict[str, Any]) -> msgspec.Struct:
    """Validate spider arguments (strings from scrapyd, or typed values) into `args_type`.

    Raises SpiderArgumentError with a message naming the bad parameter.
    """
    fields = {f.name: f for f in msgspec.structs.fields(args_type)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("_"):  # scrapyd's own (_job, _version)
            continue
        if name not in fields:
            raise SpiderArgumentError(
                f"{name}: unknown argument; this spider takes {', '.join(sorted(fields))}")
        if isinstance(value, str) and _is_list(fields[name].type):
            if value.lstrip().startswith("["):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise SpiderArgumentError(f"{name}: not a JSON list: {exc}") from None
            else:
                value = [value] if value else []
        elif value == "" and fields[name].default is None:
            value = None
        values[name] = value
    try:
        return msgspec.convert(values, args_type, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if m := _AT_FIELD.match(message):
            message = f"{m.group(2)}: {m.group(1)}" + (f" (at {m.group(3)})" if m.group(3)
                                                      else "")
        elif m := _UNKNOWN.search(message):
            message = f"{m.group(1)}: unknown argument"
        raise SpiderArgumentError(message) from None
