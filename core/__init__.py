"""The ground floor of crawlgraph: the error root, the settings, shared helpers.

Every other package may import `core`; `core` imports none of them.
"""
