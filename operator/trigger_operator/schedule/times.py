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

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

from trigger_operator.models.instants import parse_instant
from trigger_operator.models.spec import (
    DaylightSaving,
    RepeatedTimes,
    SkippedTimes,
    TriggerSpec,
)
from trigger_operator.schedule.cron import CronExpression, parse_cron
from trigger_operator.schedule.errors import InvalidRunAt, InvalidSchedule, ScheduleError
from trigger_operator.schedule.walltime import (
    count_wall_times,
    first_wall_time,
    union_times_per_day,
    wall_times,
)
from trigger_operator.schedule.zones import LAST_INSTANT, Segment, load_zone, segments

SEARCH_YEARS = 400
_SEARCH_SPAN = timedelta(days=366 * SEARCH_YEARS)
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)


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
class UnionSchedule:
    """Several cron schedules of one trigger (spec.schedules): the union of their times.

    An instant two expressions share fires once. Each part keeps its own daylight-saving
    reading (Auto decides per expression whether a repeated hour fires twice).
    """

    parts: tuple[CronSchedule, ...]

    def fire_times(self, after: datetime) -> Iterator[datetime]:
        """The instants strictly after `after`, in order, each once, in UTC."""
        last: datetime | None = None
        for instant in heapq.merge(*(part.fire_times(after) for part in self.parts)):
            if instant != last:
                last = instant
                yield instant

    def count(self, after: datetime, until: datetime) -> int:
        """How many distinct instants lie in (after, until], without listing most of them.

        Within a segment the offset is fixed: whole wall-clock days are counted with the
        union of the day's time sets of the parts that match the day. The first days of a
        segment (where a gap fires or a fold cuts) and its last, partial day are listed.
        """
        after, until = _aware(after), _aware(until)
        if until <= after:
            return 0
        lower = _floor_second(after) + _SECOND
        upper = _floor_second(until) + _SECOND
        zone = self.parts[0].zone
        total = 0
        for segment in segments(zone, after, upper):
            low, high = max(segment.start, lower), min(segment.end, upper)
            if low >= high:
                continue
            offset = segment.offset
            edge_wall = _wall(low + offset)
            if segment.entered_by is not None:
                edge_wall = max(edge_wall, _wall(segment.entered_by.at + segment.entered_by.before))
            edge_end = min(high, _utc(_midnight(edge_wall) + 2 * _DAY - offset))
            tail_start = max(edge_end, _utc(_midnight(_wall(high + offset)) - offset))
            total += self._listed(low, edge_end) + self._listed(tail_start, high)
            day = _wall(edge_end + offset)
            while _utc(day - offset) < tail_start:
                matching = tuple(
                    p.expression for p in self.parts if p.expression.matches_date(day.date())
                )
                total += union_times_per_day(matching) if matching else 0
                day += _DAY
        return total

    def _listed(self, low: datetime, high: datetime) -> int:
        """How many instants lie in [low, high), by listing them (whole seconds)."""
        if low >= high:
            return 0
        return sum(1 for _ in takewhile(lambda t: t < high, self.fire_times(low - _SECOND)))


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


Schedule = CronSchedule | UnionSchedule | OneTimeSchedule
RecurringSchedule = CronSchedule | UnionSchedule


def compile_schedule(
    *,
    schedule: str | None,
    run_at: str | None,
    schedules: Sequence[str] | None = None,
    time_zone: str = "UTC",
    daylight_saving: DaylightSaving | None = None,
    hash_key: str | None = None,
) -> Schedule:
    """Compile the time fields of a spec; raise a ScheduleError naming the bad field.

    Exactly one of `schedule`, `schedules` and `run_at` is given. `hash_key` (the
    trigger's uid) is what `H` in a cron field hashes.
    """
    rules = daylight_saving or DaylightSaving()
    given = [schedule is not None, schedules is not None, run_at is not None]
    if given.count(True) != 1:
        raise ScheduleError("spec", "exactly one of schedule, schedules and runAt must be set")
    if schedules is not None:
        if not schedules:
            raise ScheduleError("spec.schedules", "needs at least one cron expression")
        parts: list[CronSchedule] = []
        for index, text in enumerate(schedules):
            try:
                compiled = compile_schedule(
                    schedule=text,
                    run_at=None,
                    time_zone=time_zone,
                    daylight_saving=rules,
                    hash_key=hash_key,
                )
            except InvalidSchedule as error:
                raise InvalidSchedule(error.problem, field=f"spec.schedules[{index}]") from None
            assert isinstance(compiled, CronSchedule)
            parts.append(compiled)
        return UnionSchedule(parts=tuple(parts)) if len(parts) > 1 else parts[0]
    # Only an expression with H depends on the key: others share one cache entry.
    key = hash_key if schedule is not None and "H" in schedule.upper() else None
    return _compile(schedule, run_at, time_zone, rules.skipped_times, rules.repeated_times, key)


def schedule_of(spec: TriggerSpec, *, hash_key: str | None = None) -> Schedule:
    """The compiled schedule of a spec (cached); raise a ScheduleError when it is invalid."""
    return compile_schedule(
        schedule=spec.schedule,
        run_at=spec.run_at,
        schedules=spec.schedules,
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


def _midnight(wall: datetime) -> datetime:
    return wall.replace(hour=0, minute=0, second=0, microsecond=0)


def _utc(wall_minus_offset: datetime) -> datetime:
    return wall_minus_offset.replace(tzinfo=UTC)
