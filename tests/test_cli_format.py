"""The CLI's small formatting pieces."""

from __future__ import annotations

from cli.format import status_text


def test_a_close_reason_is_shown_only_when_it_says_more_than_the_status():
    assert status_text({"status": "finished", "close_reason": "finished"}) == "finished"
    assert status_text({"status": "finished", "close_reason": "max_pages"}) == \
        "finished (max_pages)"
    assert status_text({"status": "failed", "close_reason": "finished"}) == "failed (finished)"
    assert status_text({"status": "running", "close_reason": None}) == "running"
