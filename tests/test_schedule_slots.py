"""The slot logic of schedules (`jobapi.services.schedules_slots`) with a clock the test sets.

Logic only: no database. The instants are chosen, so that each case (an
on-time pass, a downtime, DST in both directions, intervals) is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobapi.errors import Unprocessable
from jobapi.services.schedules_slots import (
    COUNT_CAP,
    Timing,
    check,
    latest_slot,
    next_slot,
    plan,
    upcoming,
)

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=30)
PARIS = ZoneInfo("Europe/Paris")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def cron(expression: str, timezone: str = "UTC") -> Timing:
    return Timing(cron=expression, timezone=timezone, anchor=ANCHOR)


def test_next_slot_is_strictly_after_and_latest_is_at_or_before():
    t = cron("*/15 * * * *")
    assert next_slot(t, at(2026, 5, 1, 12, 0)) == at(2026, 5, 1, 12, 15)
    assert next_slot(t, at(2026, 5, 1, 12, 7, 30)) == at(2026, 5, 1, 12, 15)
    assert latest_slot(t, at(2026, 5, 1, 12, 15)) == at(2026, 5, 1, 12, 15)
    assert latest_slot(t, at(2026, 5, 1, 12, 29, 59, 999999)) == at(2026, 5, 1, 12, 15)


def test_six_fields_count_seconds():
    t = cron("*/2 * * * * *")
    assert upcoming(t, at(2026, 5, 1, 12, 0, 0), 3) == [at(2026, 5, 1, 12, 0, s) for s in (2, 4, 6)]


def test_a_pass_on_time_fires_the_due_slot():
    t = cron("0 * * * *")
    p = plan(t, at(2026, 5, 1, 13), at(2026, 5, 1, 13, 0, 1), "none", GRACE)
    assert p is not None
    assert (p.slot, p.fire, p.late, p.missed) == (at(2026, 5, 1, 13), True, False, 0)
    assert p.next_due == at(2026, 5, 1, 14)


def test_nothing_is_due_before_the_slot():
    assert plan(cron("0 * * * *"), at(2026, 5, 1, 13), at(2026, 5, 1, 12, 59, 59), "latest",
                GRACE) is None


@pytest.mark.parametrize(("catchup", "fires"), [("latest", True), ("none", False)])
def test_after_a_downtime_only_the_newest_missed_slot_is_handled(catchup, fires):
    t = cron("0 * * * *")
    # Down from 12:30 to 17:10: the 13:00 to 17:00 slots were missed.
    p = plan(t, at(2026, 5, 1, 13), at(2026, 5, 1, 17, 10), catchup, GRACE)
    assert p is not None
    assert (p.slot, p.fire, p.late, p.missed) == (at(2026, 5, 1, 17), fires, True, 4)
    assert p.next_due == at(2026, 5, 1, 18)


def test_a_short_gap_within_the_grace_fires_the_newest_on_time():
    t = cron("* * * * * *")  # every second
    p = plan(t, at(2026, 5, 1, 12, 0, 0), at(2026, 5, 1, 12, 0, 3, 500000), "none", GRACE)
    assert p is not None and (p.slot, p.fire, p.late, p.missed) == \
        (at(2026, 5, 1, 12, 0, 3), True, False, 3)


def test_missed_slots_are_counted_up_to_a_cap():
    t = cron("* * * * * *")
    p = plan(t, at(2026, 5, 1), at(2026, 5, 2), "latest", GRACE)
    assert p is not None and p.missed == COUNT_CAP and p.slot == at(2026, 5, 2)


def test_interval_slots_are_anchor_plus_whole_steps():
    t = Timing(interval_seconds=90, anchor=at(2026, 5, 1, 12))
    assert next_slot(t, at(2026, 5, 1, 11)) == at(2026, 5, 1, 12, 1, 30)  # never the anchor
    assert next_slot(t, at(2026, 5, 1, 12, 3)) == at(2026, 5, 1, 12, 4, 30)
    assert latest_slot(t, at(2026, 5, 1, 12, 4, 29)) == at(2026, 5, 1, 12, 3)
    p = plan(t, at(2026, 5, 1, 12, 1, 30), at(2026, 5, 1, 13), "latest", GRACE)
    assert p is not None and (p.slot, p.missed) == (at(2026, 5, 1, 13), 39)


def test_spring_forward_a_time_that_does_not_exist_fires_after_the_gap():
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; 02:30 never happens.
    slots = upcoming(cron("30 2 * * *", "Europe/Paris"), at(2026, 3, 27), 3)
    local = [s.astimezone(PARIS).strftime("%d %H:%M %Z") for s in slots]
    assert local == ["27 02:30 CET", "28 02:30 CET", "29 03:00 CEST"]


def test_fall_back_a_time_that_happens_twice_fires_once():
    # 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    slots = upcoming(cron("30 2 * * *", "Europe/Paris"), at(2026, 10, 24, 12), 2)
    assert [s.astimezone(PARIS).strftime("%d %H:%M %Z") for s in slots] == \
        ["25 02:30 CEST", "26 02:30 CET"]


def test_hourly_runs_on_elapsed_time_across_the_fall_back():
    slots = upcoming(cron("0 * * * *", "Europe/Paris"), at(2026, 10, 24, 23, 30), 4)
    assert [s.hour for s in slots] == [0, 1, 2, 3]  # UTC: one each elapsed hour


@pytest.mark.parametrize(("timing", "words"), [
    (cron("61 * * * *"), "the minute field of '61 * * * *'"),
    (cron("* * * * 8"), "day-of-week field"),
    (cron("0 0 * * * * *"), "7 fields"),
    (cron("0 0 31 2 *"), "day-of-month"),
    (cron("0 3 * * *", "Mars/Olympus_Mons"), "no time zone 'Mars/Olympus_Mons'"),
    (cron("0 3 * * *", "../../etc/passwd"), "no time zone"),
    (Timing(cron="0 3 * * *", interval_seconds=5, anchor=ANCHOR), "not both"),
])
def test_bad_timings_are_refused_saying_what(timing, words):
    with pytest.raises(Unprocessable) as refused:
        check(timing)
    assert words in refused.value.message
