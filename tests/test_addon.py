"""The crawlgraph add-on: the crawler's settings from the environment, and only those."""

from __future__ import annotations

import pytest
from scrapy.utils.test import get_crawler

from tests.crawlrun import run_crawl

ADDON = {"crawler.addon.CrawlgraphAddon": 0}
DATABASE = "postgresql://crawlgraph:pw@db.example:5432/crawlgraph"
REDIS = "redis://:pw@redis.example:6379/0"


@pytest.fixture
def environ(monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "REDIS_URL", "ALLOW_PRIVATE_NETWORKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRAWLGRAPH_HOME", str(tmp_path))
    return monkeypatch


def settings_of(**settings):
    return get_crawler(settings_dict={"ADDONS": ADDON, **settings}).settings


def test_empty_settings_are_filled_from_the_environment(environ) -> None:
    environ.setenv("DATABASE_URL", DATABASE)
    environ.setenv("REDIS_URL", REDIS)
    environ.setenv("ALLOW_PRIVATE_NETWORKS", "1")
    settings = settings_of(CRAWLGRAPH_DATABASE_URL="")
    assert settings.get("CRAWLGRAPH_DATABASE_URL") == DATABASE
    assert settings.get("CRAWLGRAPH_REDIS_URL") == REDIS
    assert settings.getbool("CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS") is True


def test_a_job_s_own_values_win(environ) -> None:
    environ.setenv("DATABASE_URL", DATABASE)
    environ.setenv("ALLOW_PRIVATE_NETWORKS", "1")
    settings = settings_of(CRAWLGRAPH_DATABASE_URL="postgresql://job@127.0.0.1/job",
                           CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS=False)
    assert settings.get("CRAWLGRAPH_DATABASE_URL") == "postgresql://job@127.0.0.1/job"
    assert settings.getbool("CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS") is False


def test_without_the_environment_urls_stay_empty_and_private_networks_refused(environ) -> None:
    settings = settings_of()
    # Not the embedded stack's derived URLs: without a stack, a crawl with a job
    # id runs without storage instead of waiting for one.
    assert not settings.get("CRAWLGRAPH_DATABASE_URL")
    assert not settings.get("CRAWLGRAPH_REDIS_URL")
    assert settings.getbool("CRAWLGRAPH_ALLOW_PRIVATE_NETWORKS") is False


def test_the_environment_switch_reaches_a_real_crawl(mock_server) -> None:
    """The job API passes ALLOW_PRIVATE_NETWORKS to crawler processes in their environment."""
    server = mock_server(pages=3)
    result = run_crawl("crawler.spiders.site.SiteSpider", {"start_urls": server.start_url},
                       env={"ALLOW_PRIVATE_NETWORKS": "1"})
    assert len(result.pages) == 3 and "addressguard/refused" not in result.stats
