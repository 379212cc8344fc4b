"""Fire times: the UTC instants a trigger's schedule fires at, after a given instant.

A `Schedule` is compiled once from the spec's schedule or runAt, timeZone and
daylightSaving; compiling is where every input error is raised (`ScheduleError`), so a
compiled schedule never fails. Both kinds answer the same two questions:
`fire_times(after)`, the instants strictly after `after` in order, and
`count(after, until)`, how many lie in (after, until], computed without listing them.

A cron schedule is read on the zone's wall clock, segment by segment (see zones.py):
inside a segment the offset is fixed and wall-clock times map one to one onto instants;
at the start of a segment the daylight-saving rules decide what a gap or a fold does:

- gap, RunAfterGap: when any matching wall-clock time fell in the gap, fire once at the
  transition, the first instant after the gap (the same instant as a regular time there
  is one run, not two); Skip: nothing.
- fold, Once: the wall-clock times already seen before the transition do not fire
  again; Twice: they do; Auto: Twice when the hour field is `*` or `*/n`, else Once.

`fire_times` looks at most 400 years past `after` (every possible date has fallen on
every weekday by then) and never past the year 9997, so a schedule that has stopped
firing ends the iteration instead of searching forever. Instants are aware; a naive
datetime is refused rather than read in the host's zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo

from trigger_operator.models.instants import parse_instant
from trigger_operator.models.spec import (
    DaylightSaving,
    RepeatedTimes,
    SkippedTimes,
    TriggerSpec,
)
from trigger_operator.schedule.cron import CronExpression, parse_cron
from trigger_operator.schedule.errors import InvalidRunAt, ScheduleError
from trigger_operator.schedule.walltime import count_wall_times, first_wall_time, wall_times
from trigger_operator.schedule.zones import LAST_INSTANT, Segment, load_zone, segments

SEARCH_YEARS = 400
_SEARCH_SPAN = timedelta(days=366 * SEARCH_YEARS)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression read on a zone's wall clock, with its daylight-saving rules."""

    expression: CronExpression
    zone: ZoneInfo
    skipped_times: SkippedTimes
    repeated_times: RepeatedTimes

    @property
    def fires_twice_in_folds(self) -> bool:
        """Whether a wall-clock time that happens twice fires twice."""
        if self.repeated_times is RepeatedTimes.AUTO:
            return self.expression.interval_hours
        return self.repeated_times is RepeatedTimes.TWICE

    def fire_times(self, after: datetime) -> Iterator[datetime]:
        """The instants strictly after `after`, in order, in UTC."""
        after = _aware(after)
        lower = _floor_second(after) + _SECOND
        horizon = _search_horizon(after)
        last: datetime | None = None
        for segment in segments(self.zone, after, horizon):
            gap_instant = self._gap_instant(segment)
            if gap_instant is not None and gap_instant > after:
                last = gap_instant
                yield gap_instant
            start = self._wall_start(segment, lower)
            end = _wall(segment.end + segment.offset)
            for wall in wall_times(self.expression, start, end):
                instant = _utc(wall - segment.offset)
                if instant != last:  # a regular time at the end of a gap fires once
                    last = instant
                    yield instant

    def count(self, after: datetime, until: datetime) -> int:
        """How many instants lie in (after, until]."""
        after, until = _aware(after), _aware(until)
        if until <= after:
            return 0
        lower = _floor_second(after) + _SECOND
        upper = _floor_second(until) + _SECOND
        total = 0
        for segment in segments(self.zone, after, upper):
            gap_instant = self._gap_instant(segment)
            if (
                gap_instant is not None
                and after < gap_instant < upper
                and not self.expression.matches(_wall(gap_instant + segment.offset))
            ):
                total += 1
            start = self._wall_start(segment, lower)
            end = _wall(min(segment.end, upper) + segment.offset)
            total += count_wall_times(self.expression, start, end)
        return total

    def _gap_instant(self, segment: Segment) -> datetime | None:
        """The transition instant, when the segment opens a gap that swallowed a match."""
        transition = segment.entered_by
        if transition is None or not transition.is_gap or self.skipped_times is SkippedTimes.SKIP:
            return None
        skipped_from = _wall(transition.at + transition.before)
        skipped_until = _wall(transition.at + transition.after)
        if first_wall_time(self.expression, skipped_from, skipped_until) is None:
            return None
        return transition.at

    def _wall_start(self, segment: Segment, lower: datetime) -> datetime:
        start = _wall(max(segment.start, lower) + segment.offset)
        transition = segment.entered_by
        if transition is not None and transition.is_fold and not self.fires_twice_in_folds:
            # The wall-clock times up to the old offset already happened before the fold.
            start = max(start, _wall(transition.at + transition.before))
        return start


@dataclass(frozen=True)
class OneTimeSchedule:
    """A single instant, from runAt."""

    run_at: datetime

    def fire_times(self, after: datetime) -> Iterator[datetime]:
        """The run-at instant, when it is strictly after `after`."""
        if self.run_at > after:
            yield self.run_at

    def count(self, after: datetime, until: datetime) -> int:
        """1 when the run-at instant lies in (after, until], else 0."""
        return int(after < self.run_at <= until)


Schedule = CronSchedule | OneTimeSchedule


def compile_schedule(
    *,
    schedule: str | None,
    run_at: str | None,
    time_zone: str = "UTC",
    daylight_saving: DaylightSaving | None = None,
    hash_key: str | None = None,
) -> Schedule:
    """Compile the time fields of a spec; raise a ScheduleError naming the bad field.

    `hash_key` (the trigger's uid) is what `H` in a cron field hashes.
    """
    rules = daylight_saving or DaylightSaving()
    # Only an expression with H depends on the key: others share one cache entry.
    key = hash_key if schedule is not None and "H" in schedule.upper() else None
    return _compile(schedule, run_at, time_zone, rules.skipped_times, rules.repeated_times, key)


def schedule_of(spec: TriggerSpec, *, hash_key: str | None = None) -> Schedule:
    """The compiled schedule of a spec (cached); raise a ScheduleError when it is invalid."""
    return compile_schedule(
        schedule=spec.schedule,
        run_at=spec.run_at,
        time_zone=spec.time_zone,
        daylight_saving=spec.daylight_saving,
        hash_key=hash_key,
    )


def next_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The first instant strictly after `after`; None when the schedule never fires again."""
    return next(schedule.fire_times(after), None)


def upcoming(schedule: Schedule, after: datetime, n: int) -> list[datetime]:
    """The first `n` instants strictly after `after` (fewer when it stops firing)."""
    return list(islice(schedule.fire_times(after), max(n, 0)))


@lru_cache(maxsize=1024)
def _compile(
    schedule: str | None,
    run_at: str | None,
    time_zone: str,
    skipped_times: SkippedTimes,
    repeated_times: RepeatedTimes,
    hash_key: str | None,
) -> Schedule:
    if (schedule is None) == (run_at is None):
        raise ScheduleError("spec", "exactly one of schedule and runAt must be set")
    zone = load_zone(time_zone)
    if run_at is not None:
        try:
            return OneTimeSchedule(run_at=parse_instant(run_at))
        except ValueError as error:
            raise InvalidRunAt(str(error)) from None
    assert schedule is not None
    return CronSchedule(
        expression=parse_cron(schedule, hash_key=hash_key),
        zone=zone,
        skipped_times=skipped_times,
        repeated_times=repeated_times,
    )


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("fire times are computed from aware instants, got a naive datetime")
    return instant.astimezone(UTC)


def _search_horizon(after: datetime) -> datetime:
    if after >= LAST_INSTANT - _SEARCH_SPAN:
        return LAST_INSTANT
    return after + _SEARCH_SPAN


def _floor_second(instant: datetime) -> datetime:
    return instant.replace(microsecond=0)


def _wall(instant: datetime) -> datetime:
    """The naive reading of an aware instant already shifted by an offset."""
    return instant.replace(tzinfo=None)


def _utc(wall_minus_offset: datetime) -> datetime:
    return wall_minus_offset.replace(tzinfo=UTC)
