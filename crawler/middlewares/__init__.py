"""Downloader middlewares for polite, safe crawling.

Each module holds one component (the throttle's parts are in the
``throttle*`` modules and `retryafter`); `crawler.settings` turns them on in
its ``DOWNLOADER_MIDDLEWARES``, with their order and settings, and
`crawler.middlewares.signals` lists what they tell one another.
"""
