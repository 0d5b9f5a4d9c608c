"""The shared crawl frontier in Redis: leased queue, seen-set, scheduler.

- `crawler.frontier.queue`: `JobFrontier` (the job API seeds, pauses, resumes,
  clears and reads the stats of a job's frontier) and `AsyncJobFrontier`;
- `crawler.frontier.scripts`: the atomic Redis operations and the key layout;
- `crawler.frontier.serialize`: requests as msgpack, callbacks by name;
- `crawler.frontier.scheduler`: the Scrapy scheduler (``SCHEDULER =
  "crawler.frontier.scheduler.RedisScheduler"``, on in `crawler.settings`).
"""

from crawler.frontier.errors import FrontierError
from crawler.frontier.queue import AsyncJobFrontier, FrontierKeys, JobFrontier

__all__ = ["AsyncJobFrontier", "FrontierError", "FrontierKeys", "JobFrontier"]
