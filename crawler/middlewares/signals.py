"""Signals the crawling middlewares send one another.

Connect a handler with ``crawler.signals.connect(handler, signal)``; a handler
takes the keyword arguments it needs (Scrapy passes only those it accepts)
and may be a coroutine function (the sender awaits it).

- `robots_parsed` (`crawler.middlewares.robots`): the robots.txt rules of a
  host were read. Arguments: ``url`` (the origin, ``scheme://host:port``),
  ``rules`` (`RobotsRules`), ``crawl_delay`` (seconds for our product token,
  or None). The throttle turns the crawl delay into the host's minimum delay.
- `host_blocked` (`crawler.middlewares.blocks`): a host showed a block
  (a CAPTCHA page, a burst of 403s). Arguments: ``url`` (the response's),
  ``kind`` (``captcha`` or ``forbidden_burst``). The throttle slows the host down.
"""

from __future__ import annotations

robots_parsed = object()
host_blocked = object()
