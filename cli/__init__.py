"""The `crawlgraph` command line: the top floor, beside the local stack.

`cli.main` assembles the command groups (`stack`, `jobs`, `users`, `graphs`,
`crawl`); `cli.client` is the HTTP client of the job API that they share.
"""
