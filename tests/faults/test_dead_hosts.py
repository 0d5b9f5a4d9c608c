"""Scenario 19: a crawl of a dead host fails and says which host and why.

The start URL's name does not resolve. robots.txt, fetched first, fails the
same way; the seed is still a page error with its cause (it used to be
dropped without a trace), the job stored no page that answered, so it ends
`failed` with a reason naming the host and the cause, and `make crawl`
(`crawlgraph crawl-to-graph`) exits 1 without building a graph.
"""

from __future__ import annotations

import pytest

from tests.test_cli_crawl import _run, full_stack  # noqa: F401,F811 - the stack fixture


@pytest.mark.scenario(19, done="make crawl of a start URL whose host does not resolve",
                      checked="the job fails with 'no-such-host.invalid: the name does not "
                              "resolve', the summary lists the error by cause, exit status 1, "
                              "no graph built")
def test_a_dead_start_host_fails_the_crawl_with_its_cause_and_exits_1(full_stack, tmp_path):  # noqa: F811
    result = _run(full_stack.environ, "http://no-such-host.invalid/", "--out", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "failed" in out
    assert "no page could be fetched: no-such-host.invalid: the name does not resolve" in out
    assert "the name does not resolve" in out.split("errors   by cause")[1]
    assert "building the page and host graphs" not in out
    assert not any(tmp_path.iterdir())
