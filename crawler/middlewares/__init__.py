"""Downloader middlewares for polite, safe crawling.

Each module holds one component; `crawler.middlewares.defaults` lists them
with their order and default settings so that `crawler/settings.py` turns
them all on with one import.
"""
