"""When a schedule is due: its slots from a cron expression or an interval, and catch-up.

Pure logic over datetimes (no database, no clock of its own), so that every
scheduler process computes the same slots and a test can drive it with any
clock. Cron expressions are parsed by cronsim (five fields, or six with
seconds first), in the schedule's time zone (zoneinfo); DST follows Debian's
cron as cronsim does: a time that does not exist (the spring-forward hour)
fires at the first minute after the gap, a time that happens twice (the
fall-back hour) fires once, at its first occurrence; expressions whose minute
or hour field starts with `*` run on elapsed time across the change. Interval
slots are `anchor + k * interval` (k >= 1), the same for every process.

`plan` decides what one scheduler pass does with a schedule whose next slot
is due: fire the newest due slot if it is on time (at most `grace` late);
after a downtime, `latest` still fires it once and `none` records it missed.
Older due slots are covered by that one run and never fire.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import msgspec
from cronsim import CronSim, CronSimError

from jobapi.errors import Unprocessable

Catchup = Literal["latest", "none"]
COUNT_CAP = 1000  # missed slots are counted up to this many
_SECOND = timedelta(seconds=1)


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule's clock: a cron expression in a time zone, or an interval from an anchor."""

    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = None
    anchor: datetime


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What to do now: the slot the run is for, whether it fires, and when to look next."""

    slot: datetime
    fire: bool
    late: bool
    missed: int
    next_due: datetime | None


def zone(name: str) -> ZoneInfo:
    """The time zone of this IANA name; a 422 naming it if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    close = sorted(z for z in available_timezones() if z.lower() == name.lower())
    raise Unprocessable(
        f"timezone: there is no time zone {name!r}.", field="timezone",
        hint=(f"Did you mean {close[0]!r}? " if close else "")
        + "Use an IANA name such as 'UTC', 'Europe/Paris' or 'America/New_York'.")


def check_cron(expression: str) -> None:
    """Refuse an expression cronsim cannot read, saying which field is wrong."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise Unprocessable(
            f"cron: {expression!r} has {len(fields)} fields; a cron expression has 5 "
            "(minute hour day-of-month month day-of-week) or 6 (seconds first).",
            field="cron", hint="For example '0 3 * * *' (every day at 03:00).")
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        what = str(exc).removeprefix("Bad ") or "expression"
        raise Unprocessable(
            f"cron: the {what} field of {expression!r} is not valid.", field="cron",
            hint="Fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 "
                 "or JAN-DEC), day of week (0-7 or SUN-SAT); with 6 fields, seconds first.",
        ) from None


def check(timing: Timing) -> None:
    """Refuse a timing that cannot work: a bad cron expression, an unknown time zone."""
    zone(timing.timezone)
    if (timing.cron is None) == (timing.interval_seconds is None):
        raise Unprocessable("Give either cron or interval_seconds, not both or neither.",
                            field="cron", hint="cron: '0 3 * * *', or interval_seconds: 3600.")
    if timing.cron is not None:
        check_cron(timing.cron)
        if next_slot(timing, timing.anchor) is None:
            raise Unprocessable(f"cron: {timing.cron!r} never fires.", field="cron",
                                hint="Check the day of month against the month.")


def next_slot(timing: Timing, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (UTC), None if there is none."""
    if timing.interval_seconds is not None:
        step = timing.interval_seconds
        elapsed = (after - timing.anchor).total_seconds()
        k = max(1, int(elapsed // step) + 1)
        return timing.anchor + timedelta(seconds=k * step)
    assert timing.cron is not None
    local = after.astimezone(zone(timing.timezone))
    try:
        return next(CronSim(timing.cron, local)).astimezone(UTC)
    except StopIteration:
        return None


def latest_slot(timing: Timing, now: datetime) -> datetime | None:
    """The last slot at or before `now` (UTC), None if there is none since the anchor."""
    if timing.interval_seconds is not None:
        k = int((now - timing.anchor).total_seconds() // timing.interval_seconds)
        return timing.anchor + timedelta(seconds=k * timing.interval_seconds) if k >= 1 else None
    assert timing.cron is not None
    # Slots fall on whole seconds: the last one before the next whole second.
    ceiling = now.replace(microsecond=0) + _SECOND
    local = ceiling.astimezone(zone(timing.timezone))
    try:
        return next(CronSim(timing.cron, local, reverse=True)).astimezone(UTC)
    except StopIteration:
        return None


def upcoming(timing: Timing, after: datetime, count: int) -> list[datetime]:
    """The next `count` slots after `after`."""
    slots: list[datetime] = []
    slot = next_slot(timing, after)
    while slot is not None and len(slots) < count:
        slots.append(slot)
        slot = next_slot(timing, slot)
    return slots


def _count_between(timing: Timing, first: datetime, last: datetime) -> int:
    """How many slots lie in [first, last), counted up to COUNT_CAP."""
    if timing.interval_seconds is not None:
        return min(COUNT_CAP, int((last - first).total_seconds() // timing.interval_seconds))
    count, slot = 0, first
    while slot is not None and slot < last and count < COUNT_CAP:
        count += 1
        slot = next_slot(timing, slot)
    return count


def plan(timing: Timing, due: datetime, now: datetime, catchup: Catchup,
         grace: timedelta) -> Plan | None:
    """What a scheduler pass at `now` does with a schedule whose next slot is `due`.

    None if `due` is still in the future. Otherwise the run is for the newest
    slot at or before `now`; it fires if it is at most `grace` late, or, later
    than that (no scheduler ran at its time), if `catchup` is `latest`.
    """
    if due > now:
        return None
    slot = latest_slot(timing, now) or due
    slot = max(slot, due)
    late = now - slot > grace
    return Plan(slot=slot, fire=not late or catchup == "latest", late=late,
                missed=_count_between(timing, due, slot), next_due=next_slot(timing, slot))
