"""Spiders of the tests and benchmarks, not of the product (`follow`), and the harness
that runs the kit's spider middlewares without a reactor (`kit`).

scrapyd and `scrapy` find them with the settings module `tests.spiders.settings`
(`SCRAPY_SETTINGS_MODULE`, the repository on `PYTHONPATH`), which the test
stack and the crawl benchmark set; the product's `scrapy list` and
`GET /spiders` do not show them.
"""
