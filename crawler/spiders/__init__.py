"""Spiders of the crawlgraph project; `scrapy list` shows them all."""
