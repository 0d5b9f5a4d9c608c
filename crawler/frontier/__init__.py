"""The shared crawl frontier in Redis: leased queue, seen-set, scheduler.

- `crawler.frontier.queue`: `JobFrontier`, the one (async) client of a job's
  frontier: the job API seeds, pauses, resumes, clears and reads the stats of
  a job with it, the scheduler pushes, leases and acknowledges;
- `crawler.frontier.scripts`: the atomic Redis operations and the key layout;
- `crawler.frontier.serialize`: requests as msgpack, callbacks by name;
- `crawler.frontier.scheduler`: the Scrapy scheduler (``SCHEDULER =
  "crawler.frontier.scheduler.RedisScheduler"``, on in `crawler.settings`),
  with `crawler.frontier.worker` (its background task and local state) and
  `crawler.frontier.acks` (when a lease may be acknowledged);
- `crawler.frontier.defer`: `Defer`, which a downloader middleware raises to
  send a request back to the job's frontier for later, and the
  `DeferMiddleware` that hands it to the scheduler.
"""

from crawler.frontier.errors import FrontierError
from crawler.frontier.queue import ENDED_REASON, FrontierKeys, JobFrontier

__all__ = ["ENDED_REASON", "FrontierError", "FrontierKeys", "JobFrontier"]
