"""Scrapy settings of the crawlgraph project.

scrapyd runs this project straight from the checkout (scrapy.cfg names this
module). Every crawlgraph setting is prefixed ``CRAWLGRAPH_`` and read by its
component in ``from_crawler``, from Scrapy's settings only; a job passes its
own values with ``-s NAME=value`` (scrapyd: ``setting=NAME=value``). The
add-on `crawler.addon` fills the three that come from the environment.

crawlgraph settings (defaults in brackets), by component:

- From the environment (`crawler.addon`, when a job leaves them empty):
  ``CRAWLGRAPH_DATABASE_URL`` [env ``DATABASE_URL``]: PostgreSQL for the
  storage pipeline, the crawl ledger and the job-state extension;
  ``CRAWLGRAPH_REDIS_URL`` [env ``REDIS_URL``]: Redis holding the frontier and
  the shared throttle state; ``CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS`` [env
  ``ALLOW_PRIVATE_NETWORKS``, else False]: the address guard's off switch.
- ``CRAWLGRAPH_JOB_ID`` [the spider argument ``job_id``]: the job a crawler
  process works on.
- Storage (`crawler.pipelines.storage`): ``CRAWLGRAPH_BATCH_SIZE`` [5000] rows
  per transaction; ``CRAWLGRAPH_FLUSH_SECONDS`` [1.0] the longest a row waits
  in the buffer; ``CRAWLGRAPH_BUFFER_MAX_ROWS`` [50000] buffered rows above
  which the engine is paused; ``CRAWLGRAPH_STORAGE_WRITERS`` [2] connections
  writing side by side; ``CRAWLGRAPH_RETRY_MAX_SECONDS`` [10.0] the longest
  backoff between retries of PostgreSQL and Redis (also the frontier's).
- Frontier (`crawler.frontier.scheduler`): ``CRAWLGRAPH_LEASE_SECONDS`` [60]
  lease of a taken request, renewed every third of it, requeued when it
  expires; ``CRAWLGRAPH_PREFETCH`` [0: CONCURRENT_REQUESTS] requests leased
  ahead; ``CRAWLGRAPH_POLL_SECONDS`` [0.1] how often an idle worker asks again.
- Job state (`crawler.extensions`): ``CRAWLGRAPH_STATS_INTERVAL`` [5.0]
  seconds between live-stats writes.
- Crawl ledger (`crawler.middlewares.ledger`): ``CRAWLGRAPH_LEDGER_FLUSH_SECONDS``
  [2.0] seconds between writes of robots decisions and crawl events.
- Address guard (`crawler.middlewares.addressguard`):
  ``CRAWLGRAPH_ADDRESSGUARD_ALLOWED_NETWORKS`` [none] CIDR networks let
  through; ``CRAWLGRAPH_ADDRESSGUARD_CACHE_SECONDS`` [300] how long a host's
  verdict is kept.
- robots.txt (`crawler.middlewares.robots`): ``CRAWLGRAPH_ROBOTS_OBEY``
  [ROBOTSTXT_OBEY]; ``CRAWLGRAPH_ROBOTS_TOKEN`` ["crawlgraph"] the product
  token matched; ``CRAWLGRAPH_ROBOTS_TTL`` [86400] and
  ``CRAWLGRAPH_ROBOTS_ERROR_TTL`` [60] seconds a verdict is kept;
  ``CRAWLGRAPH_ROBOTS_MAX_WAIT`` [300] seconds a host's requests wait while its
  robots.txt answers 5xx or does not answer, asked again after
  ``CRAWLGRAPH_ROBOTS_BACKOFF_BASE`` [1.0] doubling up to
  ``CRAWLGRAPH_ROBOTS_BACKOFF_MAX`` [60] seconds.
- User agents (`crawler.middlewares.useragents`):
  ``CRAWLGRAPH_USER_AGENT_ROTATION`` [True]; ``CRAWLGRAPH_USER_AGENTS`` [a pool
  of six browsers]; ``CRAWLGRAPH_USER_AGENT_MODE`` ["request" or "host"].
- Retries (`crawler.middlewares.retries`): ``CRAWLGRAPH_RETRY_BACKOFF_BASE``
  [0.5] and ``CRAWLGRAPH_RETRY_BACKOFF_MAX`` [60] seconds.
- Block detection (`crawler.middlewares.blocks`): ``CRAWLGRAPH_BLOCK_DETECTION``
  [True]; ``CRAWLGRAPH_BLOCK_MARKERS`` [CAPTCHA markers];
  ``CRAWLGRAPH_BLOCK_403_BURST`` [5] 403s within ``CRAWLGRAPH_BLOCK_403_WINDOW``
  [60] seconds.
- Throttle (`crawler.middlewares.throttle`): ``CRAWLGRAPH_THROTTLE_ENABLED``
  [True]; ``CRAWLGRAPH_THROTTLE_SHARED`` [True] through Redis;
  ``CRAWLGRAPH_THROTTLE_MIN_DELAY`` [0.0] and ``CRAWLGRAPH_THROTTLE_MAX_DELAY``
  [60] seconds between requests to a host; ``CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY``
  [8] requests in flight per host; ``CRAWLGRAPH_THROTTLE_ADAPTIVE`` [True] and
  ``CRAWLGRAPH_THROTTLE_TARGET_CONCURRENCY`` [4.0] the latency-adapted delay;
  ``CRAWLGRAPH_THROTTLE_PAUSE_STATUSES`` [429, 503],
  ``CRAWLGRAPH_THROTTLE_MAX_PAUSE`` [300] and ``CRAWLGRAPH_THROTTLE_BACKOFF_BASE``
  [1.0] the pause after them; ``CRAWLGRAPH_THROTTLE_SLACK`` [0.05] seconds
  added to a Crawl-delay; ``CRAWLGRAPH_THROTTLE_DEFER`` [True] and
  ``CRAWLGRAPH_THROTTLE_DEFER_AFTER`` [1.0] a request whose host is not due
  for longer goes back to the job's frontier instead of waiting in a slot.
- WARC archives (`crawler.middlewares.warc`, for a job with ``warc: true``):
  ``CRAWLGRAPH_WARC_ENABLED`` [True]; ``CRAWLGRAPH_WARC_DIR`` [the data
  directory's ``warc/``]; ``CRAWLGRAPH_WARC_MAX_BYTES`` [1 GB] a file's size
  before the next one is opened.
- Spider kit (`crawler.spidermiddlewares`): ``CRAWLGRAPH_CANONICAL_ENABLED``,
  ``CRAWLGRAPH_SCOPE_ENABLED``, ``CRAWLGRAPH_DEPTH_ENABLED``,
  ``CRAWLGRAPH_PAGES_ENABLED``, ``CRAWLGRAPH_RENDER_ENABLED``,
  ``CRAWLGRAPH_BUDGET_ENABLED`` [True each]; ``CRAWLGRAPH_PAGES_LINKS`` [True]
  stores the links of pages.
- Canonical URLs (`crawler.spidermiddlewares.canonical`):
  ``CRAWLGRAPH_STRIP_SESSION_PARAMS`` [True] removes session ids and tracking
  parameters (`crawler.urls.SESSION_PARAMS`) from request URLs.
- Traps (`crawler.spidermiddlewares.traps`): ``CRAWLGRAPH_TRAPS_ENABLED``
  [True]; ``CRAWLGRAPH_TRAPS_MAX_URL_LENGTH`` [2048] characters;
  ``CRAWLGRAPH_TRAPS_MAX_SEGMENT_REPEATS`` [3] times one path segment occurs;
  ``CRAWLGRAPH_TRAPS_MAX_QUERY_VARIANTS`` [100] distinct query strings of one
  path, for the job (0: no limit, each).
- Rendering (`crawler.rendering`): ``CRAWLGRAPH_CHROMIUM`` [/usr/bin/chromium];
  ``CRAWLGRAPH_RENDER_CONTEXT_PAGES`` [100] pages per browser context
  (`crawler.rendercontexts`). Chromium connects only through the render
  guard (`crawler.renderguard`), which reads the address guard's settings,
  ``CRAWLGRAPH_RESOLVE`` and ``CRAWLGRAPH_CA_BUNDLE``.
- Names (`crawler.resolver`): ``CRAWLGRAPH_RESOLVE`` [none] entries
  ``HOST:PORT:ADDRESS[:CONNECT_PORT]`` like curl's ``--resolve``: that host and
  port connect to that address (the name stays in the URL, Host, SNI and the
  certificate check; the address guard checks the address);
  ``CRAWLGRAPH_RESOLVER_FALLBACK`` [scrapy.resolver.CachingThreadedResolver]
  resolves the other names. Process-wide: give them with ``-s``.
- TLS (`crawler.tls`): ``CRAWLGRAPH_CA_BUNDLE`` [none: Scrapy's default, no
  certificate verified] a PEM file of CA certificates; when set, every HTTPS
  certificate is verified against those CAs only, and its name against the host.
"""

from __future__ import annotations

from pathlib import Path

# --- Project -----------------------------------------------------------------
BOT_NAME = "crawlgraph"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
# `scrapy genspider` templates.
TEMPLATES_DIR = str(Path(__file__).resolve().parent / "templates")

# scrapy-playwright needs the asyncio reactor; the frontier and the pipelines
# run their background work as asyncio tasks on it.
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"

# The environment's part of the settings (see the docstring).
ADDONS = {"crawler.addon.CrawlgraphAddon": 0}

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
CRAWLGRAPH_ROBOTS_TOKEN = "crawlgraph"
CRAWLGRAPH_THROTTLE_MIN_DELAY = 0.0
CRAWLGRAPH_THROTTLE_MAX_CONCURRENCY = 8
CRAWLGRAPH_USER_AGENT_MODE = "request"

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

# --- Downloader and spider middlewares ---------------------------------------
# Polite, safe crawling (crawler/middlewares): private-address guard, robots.txt
# (obeyed while ROBOTSTXT_OBEY), user-agent rotation, retries with backoff, block
# detection and the per-host throttle shared through Redis. They replace Scrapy's
# robots.txt, user-agent and retry middlewares.
DOWNLOADER_MIDDLEWARES: dict[str, int | None] = {
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scrapy.downloadermiddlewares.useragent.UserAgentMiddleware": None,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    # First, so its process_exception comes last: a request a middleware defers
    # goes back to the job's frontier once every middleware has undone its part.
    "crawler.frontier.defer.DeferMiddleware": 40,
    # First: a frontier seed gets the spider's errback before anything can refuse it.
    "crawler.middlewares.seeds.SeedErrbackMiddleware": 50,
    # Before robots.txt: a private host's robots.txt is not fetched either.
    "crawler.middlewares.addressguard.AddressGuardMiddleware": 60,
    "crawler.middlewares.robots.RobotsMiddleware": 100,
    "crawler.middlewares.useragents.UserAgentRotationMiddleware": 500,
    "crawler.middlewares.retries.RetryBackoffMiddleware": 550,
    # Between decompression (590) and meta refresh (580): a page whose <base href>
    # does not parse is read with its own URL as its base.
    "crawler.middlewares.basehref.BaseHrefMiddleware": 585,
    # Sees a 403/CAPTCHA before the retry middleware turns it into a retry.
    "crawler.middlewares.blocks.BlockDetectionMiddleware": 560,
    # Last before the download: the slot is reserved as late as possible, and
    # its process_response sees the latency first.
    "crawler.middlewares.throttle.ThrottleMiddleware": 950,
    # A recrawl's If-None-Match / If-Modified-Since; its 304s carry the previous page over.
    "crawler.middlewares.conditional.ConditionalMiddleware": 900,
    # Closest to the download: archives responses before decompression (590) decodes them.
    "crawler.middlewares.warc.WarcMiddleware": 960,
}
# The spider kit (crawler/spidermiddlewares, its docstring gives the order):
# canonical URLs, scope, max_depth, Page/Link items, rendering, max_pages.
SPIDER_MIDDLEWARES: dict[str, int | None] = {
    "crawler.spidermiddlewares.canonical.CanonicalUrlMiddleware": 980,
    "crawler.spidermiddlewares.scope.ScopeMiddleware": 970,
    "crawler.spidermiddlewares.depth.MaxDepthMiddleware": 960,
    # After scope and max_depth: only requests that would be queued spend a path's variants.
    "crawler.spidermiddlewares.traps.TrapsMiddleware": 955,
    "crawler.spidermiddlewares.pages.PagesMiddleware": 560,
    "crawler.spidermiddlewares.render.RenderMiddleware": 550,
    "crawler.spidermiddlewares.budget.PageBudgetMiddleware": 540,
}

# --- Politeness and throughput -------------------------------------------------
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
# Scrapy runs the output of each response (its items and requests) through this many
# tasks, all made per response: its default of 100 made 100 tasks for about 12 outputs
# (figures in bench/crawl.py). The project's pipelines are synchronous; a spider with
# an awaiting pipeline (media downloads) may raise it.
CONCURRENT_ITEMS = 16
# ThrottleMiddleware replaces Scrapy's per-slot delay and AutoThrottle, and is
# shared by the workers of a job: keep these off.
AUTOTHROTTLE_ENABLED = False
DOWNLOAD_DELAY = 0

# --- Download limits (crawler/middlewares/limits.py tells a cut-off apart) -----
# A decompression bomb, an endless body or a server that never finishes is cut off.
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = DOWNLOAD_MAXSIZE // 2
DOWNLOAD_TIMEOUT = 30
DNS_TIMEOUT = 10

# --- Retries and redirects (RetryBackoffMiddleware decides with these) ---------
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_MAX_TIMES = 10

# --- Names and TLS (crawler/resolver.py, crawler/tls.py) -----------------------
# Names of CRAWLGRAPH_RESOLVE connect to their address; the rest resolve as Scrapy's
# default resolver does (CRAWLGRAPH_RESOLVER_FALLBACK).
TWISTED_DNS_RESOLVER = "crawler.resolver.MappedResolver"
CRAWLGRAPH_RESOLVE: list[str] = []
# Empty: certificates are not verified (Scrapy's default); a PEM path: verified against it.
CRAWLGRAPH_CA_BUNDLE = ""
DOWNLOAD_HANDLERS = {"https": "crawler.tls.CaBundleDownloadHandler"}

# --- Misc ----------------------------------------------------------------------
FEED_EXPORT_ENCODING = "utf-8"
TELNETCONSOLE_ENABLED = False
LOG_LEVEL = "INFO"
