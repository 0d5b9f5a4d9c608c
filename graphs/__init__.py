"""Hyperlink networks from crawls, built with graph-tool."""
