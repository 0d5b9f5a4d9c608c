"""Spiders of the tests and benchmarks, not of the product (`follow`), and the harness
that runs the kit's spider middlewares without a reactor (`kit`).

The product's `scrapy list` and `GET /spiders` do not show the test spiders;
the settings module `tests.spiders.settings` adds them (see there how the
test stack, scrapyd jobs and the crawl benchmark use it).
"""
