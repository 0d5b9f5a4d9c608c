"""Scrapy settings of test and benchmark crawls: the project's, plus the test spiders.

    SCRAPY_SETTINGS_MODULE=tests.spiders.settings scrapy list

The test stack gives scrapyd this module (and the repository on PYTHONPATH),
so that scrapyd's spider list, which `schedule.json` checks, has `follow`.
scrapyd starts its crawler processes with the settings module that scrapy.cfg
names, though: a job running a test spider also passes `JOB_SETTING`.
"""

from __future__ import annotations

from crawler.settings import *  # noqa: F403
from crawler.settings import SPIDER_MODULES

# The spider modules by name: the package also holds this module and the
# middleware harness (`kit`), which hold no spider to list.
SPIDER_MODULES = [*SPIDER_MODULES, "tests.spiders.follow"]

#: The scrapyd `setting=` value that lets a crawler process load the test spiders.
JOB_SETTING = "SPIDER_MODULES=" + ",".join(SPIDER_MODULES)
