"""The crawlgraph Scrapy project: spiders, middlewares, the Redis frontier and pipelines."""
