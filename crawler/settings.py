"""Scrapy settings of the crawlgraph project.

scrapyd runs this project straight from the checkout (scrapy.cfg names this
module). Every crawlgraph setting is prefixed ``CRAWLGRAPH_`` and read by its
component in ``from_crawler``; a job passes its own values with
``-s NAME=value`` (scrapyd: ``setting=NAME=value``).

crawlgraph settings (defaults in brackets):

- ``CRAWLGRAPH_DATABASE_URL`` [env ``DATABASE_URL``]: PostgreSQL for the
  storage pipeline and the job-state extension.
- ``CRAWLGRAPH_REDIS_URL`` [env ``REDIS_URL``]: Redis holding the frontier.
- ``CRAWLGRAPH_JOB_ID`` [the spider argument ``job_id``]: the job a crawler
  process works on.
- ``CRAWLGRAPH_BATCH_SIZE`` [5000]: rows per storage transaction.
- ``CRAWLGRAPH_FLUSH_SECONDS`` [1.0]: the longest a row waits in the buffer.
- ``CRAWLGRAPH_BUFFER_MAX_ROWS`` [50000]: buffered rows above which the engine
  is paused (backpressure while PostgreSQL is slow or down).
- ``CRAWLGRAPH_STORAGE_WRITERS`` [2]: connections writing batches side by side.
- ``CRAWLGRAPH_RETRY_MAX_SECONDS`` [10.0]: the longest backoff between retries
  of PostgreSQL and Redis.
- ``CRAWLGRAPH_LEASE_SECONDS`` [60]: lease of a taken request; renewed every
  third of it while the request is in flight, requeued when it expires.
- ``CRAWLGRAPH_PREFETCH`` [CONCURRENT_REQUESTS]: requests a worker leases ahead.
- ``CRAWLGRAPH_POLL_SECONDS`` [0.1]: how often a worker with nothing to do asks
  the frontier again (other workers may push new requests).
- ``CRAWLGRAPH_STATS_INTERVAL`` [5.0]: seconds between live-stats writes.
"""

from __future__ import annotations

# --- Project -----------------------------------------------------------------
BOT_NAME = "crawlgraph"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# scrapy-playwright needs the asyncio reactor; the frontier and the pipelines
# run their background work as asyncio tasks on it.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

# --- crawlgraph components (see the docstring for their settings) ------------
CRAWLGRAPH_DATABASE_URL = ""  # empty: the DATABASE_URL environment variable
CRAWLGRAPH_REDIS_URL = ""  # empty: the REDIS_URL environment variable
CRAWLGRAPH_BATCH_SIZE = 5000
CRAWLGRAPH_FLUSH_SECONDS = 1.0
CRAWLGRAPH_BUFFER_MAX_ROWS = 50_000
CRAWLGRAPH_STORAGE_WRITERS = 2
CRAWLGRAPH_RETRY_MAX_SECONDS = 10.0
CRAWLGRAPH_LEASE_SECONDS = 60
CRAWLGRAPH_PREFETCH = 0  # 0: CONCURRENT_REQUESTS
CRAWLGRAPH_POLL_SECONDS = 0.1
CRAWLGRAPH_STATS_INTERVAL = 5.0

# --- Frontier: the shared Redis scheduler ------------------------------------
SCHEDULER = "crawler.frontier.scheduler.RedisScheduler"
# Breadth-first: the depth lowers a request's priority.
DEPTH_PRIORITY = 1

# --- Item pipelines ------------------------------------------------------------
ITEM_PIPELINES = {
    # Last, so that every other pipeline has had its say before storage.
    "crawler.pipelines.StoragePipeline": 900,
}

# --- Extensions ----------------------------------------------------------------
EXTENSIONS = {
    "crawler.extensions.JobStateExtension": 500,
}

# --- Downloader and spider middlewares (issue 4 adds its own here) -------------
# Polite, safe crawling (crawler/middlewares): private-address guard, robots.txt
# (obeyed while ROBOTSTXT_OBEY), user-agent rotation, retries with backoff, block
# detection and the per-host throttle shared through Redis. They replace Scrapy's
# robots.txt, user-agent and retry middlewares; their defaults (download limits,
# retries, TEMPLATES_DIR for `scrapy genspider`) come with them.
from crawler.middlewares.defaults import (  # noqa: E402
    CRAWLING_DOWNLOADER_MIDDLEWARES,
    CRAWLING_SETTINGS,
)

DOWNLOADER_MIDDLEWARES: dict[str, int | None] = dict(CRAWLING_DOWNLOADER_MIDDLEWARES)
# The spider kit (crawler/spidermiddlewares, its docstring gives the order):
# canonical URLs, scope, max_depth, Page/Link items, rendering, max_pages.
SPIDER_MIDDLEWARES: dict[str, int | None] = {
    "crawler.spidermiddlewares.canonical.CanonicalUrlMiddleware": 980,
    "crawler.spidermiddlewares.scope.ScopeMiddleware": 970,
    "crawler.spidermiddlewares.depth.MaxDepthMiddleware": 960,
    "crawler.spidermiddlewares.pages.PagesMiddleware": 560,
    "crawler.spidermiddlewares.render.RenderMiddleware": 550,
    "crawler.spidermiddlewares.budget.PageBudgetMiddleware": 540,
}
globals().update(CRAWLING_SETTINGS)

# --- Politeness and throughput -------------------------------------------------
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DNS_TIMEOUT = 10

# --- Misc ----------------------------------------------------------------------
FEED_EXPORT_ENCODING = "utf-8"
TELNETCONSOLE_ENABLED = False
LOG_LEVEL = "INFO"
