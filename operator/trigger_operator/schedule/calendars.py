"""Exclusions: the times a trigger's calendars (and its inline `spec.exclude`) keep from running.

A `Calendar` is compiled from one ScheduleCalendar's spec, or from a trigger's inline
exclusions, and reads every rule on its own zone:

- a date, a yearly date or a date range excludes every instant whose local date (in the
  calendar's zone) it names, midnight to midnight, whatever the length of that day;
- a yearly 02-29 excludes 29 February of leap years and nothing in other years (a date
  that does not happen is not moved to another);
- a window excludes [opening, opening + duration) for each opening of its cron expression
  (read with the default daylight-saving rules: an opening in a gap opens right after
  it); the duration is elapsed time, so a window that crosses midnight or a change of the
  clocks lasts exactly that long.

`Exclusions.excluded_by(instant)` names the first calendar that excludes a time.
`allowed_times` lists the fire times that are not excluded, with a bound on how many
excluded ones it steps over, so that a calendar that excludes everything ends a search
instead of hanging it. Compiling raises `InvalidCalendar` naming the calendar and field.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from trigger_operator.models.calendar import Exclusions
from trigger_operator.schedule.errors import ScheduleError
from trigger_operator.schedule.times import Schedule, compile_schedule, next_after
from trigger_operator.schedule.zones import load_zone

INLINE = "spec.exclude"
"""The source named for a trigger's own exclusions."""
EXCLUDED_SEARCH_LIMIT = 1000
"""How many exclusions in a row `allowed_times` steps over before it gives up."""
MAX_WINDOW = timedelta(hours=168)
_TICK = timedelta(microseconds=1)
_DURATION = re.compile(r"(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?")


class InvalidCalendar(ScheduleError):
    """A calendar (or spec.exclude) holds a date, window or zone this operator cannot read."""

    reason = "InvalidCalendar"


class CalendarNotFound(ScheduleError):
    """A calendar the trigger references does not exist in its namespace."""

    reason = "CalendarNotFound"


@dataclass(frozen=True)
class Window:
    """Openings of a cron schedule, each excluding `duration` from its instant on."""

    opens: Schedule
    duration: timedelta

    def covers(self, instant: datetime) -> bool:
        """Whether an opening lies in (instant - duration, instant]."""
        return self.closes(instant) is not None

    def closes(self, instant: datetime) -> datetime | None:
        """When the window covering `instant` closes (at least that late), or None."""
        opening = next_after(self.opens, instant - self.duration)
        if opening is None or opening > instant:
            return None
        return opening + self.duration


@dataclass(frozen=True)
class Calendar:
    """One source of exclusions, compiled."""

    source: str
    """`ScheduleCalendar <name>` or `spec.exclude`: what the ledger names."""
    zone: ZoneInfo
    dates: frozenset[date]
    yearly: frozenset[tuple[int, int]]
    ranges: tuple[tuple[date, date], ...]
    windows: tuple[Window, ...]

    def excludes(self, instant: datetime) -> bool:
        """Whether `instant` (aware) falls on an excluded date or in a window."""
        return self.excluded_until(instant) is not None

    def excluded_until(self, instant: datetime) -> datetime | None:
        """None when `instant` is not excluded; else an instant up to which (exclusive)
        everything from `instant` on is excluded by this calendar."""
        local = instant.astimezone(self.zone).date()
        last = None
        if local in self.dates or (local.month, local.day) in self.yearly:
            last = local
        for first, end in self.ranges:
            if first <= local <= end:
                last = max(last or end, end)
        until = self._midnight_after(last) if last is not None else None
        for window in self.windows:
            closes = window.closes(instant)
            if closes is not None:
                until = max(until or closes, closes)
        return until

    def _midnight_after(self, day: date) -> datetime:
        following = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return following.astimezone(UTC)


@dataclass(frozen=True)
class ExclusionSet:
    """Every calendar of one trigger, in the order the trigger lists them (inline last)."""

    calendars: tuple[Calendar, ...]
    digest: str
    """A digest of what the calendars say: it changes when any of them is edited."""

    def excluded_by(self, instant: datetime) -> str | None:
        """The source of the first calendar that excludes `instant`, or None."""
        for entry in self.calendars:
            if entry.excludes(instant):
                return entry.source
        return None

    def excluded_until(self, instant: datetime) -> datetime | None:
        """None when `instant` is not excluded; else an instant before which every time
        from `instant` on is excluded (the furthest end of the exclusions covering it)."""
        ends = [end for entry in self.calendars if (end := entry.excluded_until(instant))]
        return max(ends) if ends else None


NO_EXCLUSIONS = ExclusionSet(calendars=(), digest="")


def compile_exclusions(
    named: Sequence[tuple[str, str, Exclusions]],
    inline: Exclusions | None,
    *,
    time_zone: str,
) -> ExclusionSet:
    """Compile (name, timeZone, exclusions) of each referenced calendar, then the inline ones
    (read in the trigger's `time_zone`); raise InvalidCalendar naming the field."""
    compiled = [
        compile_calendar(f"ScheduleCalendar {name}", rules, time_zone=zone, field_prefix="spec.")
        for name, zone, rules in named
    ]
    if inline is not None:
        compiled.append(compile_calendar(INLINE, inline, time_zone=time_zone, field_prefix=""))
    material = [
        [name, zone, rules.model_dump(mode="json", by_alias=True)] for name, zone, rules in named
    ]
    if inline is not None:
        material.append([INLINE, time_zone, inline.model_dump(mode="json", by_alias=True)])
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return ExclusionSet(calendars=tuple(compiled), digest=hashlib.sha256(encoded).hexdigest()[:16])


def compile_calendar(
    source: str, rules: Exclusions, *, time_zone: str, field_prefix: str
) -> Calendar:
    """One calendar; `field_prefix` starts the field names in errors (`spec.` for a
    ScheduleCalendar, whose fields are under spec.exclude; empty for a trigger's own)."""
    where = f"{source}: " if source != INLINE else ""
    base = f"{where}{field_prefix}exclude" if source != INLINE else INLINE
    try:
        zone = load_zone(time_zone)
    except ScheduleError as error:
        raise InvalidCalendar(f"{where}{field_prefix}timeZone", error.problem) from None
    return Calendar(
        source=source,
        zone=zone,
        dates=frozenset(_date(text, f"{base}.dates[{i}]") for i, text in enumerate(rules.dates)),
        yearly=frozenset(
            _yearly(text, f"{base}.yearly[{i}]") for i, text in enumerate(rules.yearly)
        ),
        ranges=tuple(
            _range(r.start, r.end, f"{base}.ranges[{i}]") for i, r in enumerate(rules.ranges)
        ),
        windows=tuple(
            _window(w.schedule, w.duration, time_zone, f"{base}.windows[{i}]")
            for i, w in enumerate(rules.windows)
        ),
    )


def allowed_times(
    schedule: Schedule, exclusions: ExclusionSet, after: datetime
) -> Iterator[datetime]:
    """The fire times strictly after `after` that no calendar excludes, in order.

    An excluded time is stepped over with its whole exclusion (to the end of the date,
    range or window), so that a per-second schedule skips a holiday in one step. Ends
    after EXCLUDED_SEARCH_LIMIT such steps in a row: a calendar that excludes every time
    leaves nothing to run, and must not make a search endless.
    """
    steps = 0
    start = after
    while True:
        for instant in schedule.fire_times(start):
            until = exclusions.excluded_until(instant)
            if until is None:
                steps = 0
                yield instant
                continue
            steps += 1
            if steps >= EXCLUDED_SEARCH_LIMIT:
                return
            start = until - _TICK  # fire times are whole seconds: `until` itself may fire
            break
        else:
            return


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidCalendar(field, f"'{text}' is not a date (YYYY-MM-DD)") from None


def _yearly(text: str, field: str) -> tuple[int, int]:
    month_text, _, day_text = text.partition("-")
    month, day = int(month_text), int(day_text)
    # 2000 is a leap year: 02-29 is a date of some years, 02-30 of none.
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2000, month)[1]:
        raise InvalidCalendar(field, f"'{text}' is not a date of any year (MM-DD)")
    return month, day


def _range(start: str, end: str, field: str) -> tuple[date, date]:
    first, last = _date(start, f"{field}.start"), _date(end, f"{field}.end")
    if last < first:
        raise InvalidCalendar(field, f"end {end} is before start {start}")
    return first, last


def _window(text: str, duration: str, time_zone: str, field: str) -> Window:
    if "H" in text.upper():
        raise InvalidCalendar(f"{field}.schedule", "H is for triggers, not calendar windows")
    try:
        opens = compile_schedule(schedule=text, run_at=None, time_zone=time_zone)
    except ScheduleError as error:
        raise InvalidCalendar(f"{field}.schedule", error.problem) from None
    return Window(opens=opens, duration=_duration(duration, f"{field}.duration"))


def _duration(text: str, field: str) -> timedelta:
    match = _DURATION.fullmatch(text)
    length = (
        timedelta(
            hours=int(match["h"] or 0), minutes=int(match["m"] or 0), seconds=int(match["s"] or 0)
        )
        if match is not None
        else timedelta(0)
    )
    if not timedelta(0) < length <= MAX_WINDOW:
        raise InvalidCalendar(field, f"'{text}' is not a duration from 1s to 168h (e.g. 2h30m)")
    return length
