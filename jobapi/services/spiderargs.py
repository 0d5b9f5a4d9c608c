"""How a job reaches its crawler processes: scrapyd spider arguments and settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from crawler.spiders.args import CrawlParams
from jobapi.errors import Unprocessable
from jobapi.schemas import JobCreate

# Linux refuses a single argv string over 128 KiB; scrapyd passes spider
# arguments on the command line. Bigger start lists reach the crawler through
# the frontier only.
MAX_START_URLS_ARG = 100_000


def job_params(body: JobCreate) -> dict[str, Any]:
    """The crawl parameters of a job as stored in its row and passed to its spider.

    Every field of `CrawlParams` (the spider arguments' one definition), with
    `render_js` given as a mode (the API also takes a boolean).
    """
    params = {name: getattr(body, name) for name in CrawlParams.__struct_fields__}
    params["render_js"] = _render_mode(body.render_js)
    return params


def _render_mode(value: bool | str) -> str:
    if isinstance(value, bool):
        return "always" if value else "never"
    return value


def spider_args(job_id: str, params: Mapping[str, Any], workers: int = 1) -> dict[str, str]:
    """The scrapyd spider arguments of a job: strings as they are, the rest as JSON.

    `max_pages` is the job's budget: each of its `workers` gets an equal share
    (rounded up), so that together they store about `max_pages` pages.

    Start URLs too long for one command-line argument reach the crawlers through
    the frontier only; the spider then scopes the crawl by `allowed_domains`,
    which default to the start URLs' hosts.
    """
    args = {"job_id": job_id}
    for name, value in params.items():
        if value is None:
            continue
        if name == "max_pages" and workers > 1:
            value = -(-int(value) // workers)
        args[name] = value if isinstance(value, str) else json.dumps(value)
    if len(args.get("start_urls", "")) > MAX_START_URLS_ARG:
        args["start_urls"] = "[]"
        if not params.get("allowed_domains"):
            hosts = sorted({urlsplit(u).netloc.rsplit("@", 1)[-1].lower()
                            for u in params["start_urls"]})
            args["allowed_domains"] = json.dumps(hosts)
            if len(args["allowed_domains"]) > MAX_START_URLS_ARG:
                raise Unprocessable(
                    f"start_urls: {len(hosts)} different hosts are too many to scope a crawl "
                    "by.", field="start_urls",
                    hint="Give allowed_domains, or split the job.")
    return args


def setting_text(value: Any) -> str:
    """A setting override as scrapyd passes it (`setting=NAME=value`)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)
