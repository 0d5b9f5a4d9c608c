"""crawlgraph's job API, command line and local stack manager."""
