"""`make verify`: the fault, load and attack scenarios as a table.

A scenario test carries `@pytest.mark.scenario(N, done="...", checked="...")`.
With `--scenario-table`, pytest prints, after the run, one row per scenario:
its number, what was done, what was checked, and the result.
"""

from __future__ import annotations

import pytest

_RESULTS: dict[str, dict[str, object]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--scenario-table",
        action="store_true",
        help="print the fault/load/attack scenarios as a table after the run",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(n, done, checked): a numbered fault, load or attack scenario"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    marker = item.get_closest_marker("scenario")
    if marker is None:
        return report
    row = _RESULTS.setdefault(
        item.nodeid,
        {
            "n": marker.args[0],
            "done": marker.kwargs.get("done", ""),
            "checked": marker.kwargs.get("checked", ""),
            "result": "passed",
        },
    )
    if report.failed:
        row["result"] = "FAILED" if report.when == "call" else f"ERROR ({report.when})"
    elif report.skipped:
        row["result"] = "skipped"
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("--scenario-table") or not _RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("scenarios")
    write(f"{'#':>3}  {'result':<8}  {'what was done':<58}  what was checked")
    for row in sorted(_RESULTS.values(), key=lambda r: (r["n"], str(r["done"]))):
        write(f"{row['n']:>3}  {row['result']:<8}  {row['done']:<58}  {row['checked']}")
    passed = sum(1 for r in _RESULTS.values() if r["result"] == "passed")
    write(f"{passed} of {len(_RESULTS)} scenarios passed")
