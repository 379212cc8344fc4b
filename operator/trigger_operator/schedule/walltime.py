"""The wall-clock times a cron expression matches, on a naive calendar without zones.

Times are whole seconds. The walk skips by the field sets (a month not in the month
field is stepped over whole, a month's matching days are worked out once and kept, a
matching day yields only its own times), and counting is arithmetic: a whole matching day adds
`times_per_day`, a part of a day is counted hour by hour and minute by minute with a
bisection over the seconds. Every function takes a half-open range [start, end) so that
callers bound the work; nothing here searches without an end.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from trigger_operator.schedule.cron import CronExpression

_DAY_SECONDS = 86_400


def wall_times(expression: CronExpression, start: datetime, end: datetime) -> Iterator[datetime]:
    """The matching naive times in [start, end), in order."""
    first, last = _ceil_second(start), _ceil_second(end)
    for day in _matching_days(expression, first.date(), last.date()):
        low = _second_of_day(first) if day == first.date() else 0
        high = _second_of_day(last) if day == last.date() else _DAY_SECONDS
        for second in _seconds_in_day(expression, low, high):
            yield datetime.combine(day, _clock(second))


def first_wall_time(expression: CronExpression, start: datetime, end: datetime) -> datetime | None:
    """The first matching naive time in [start, end), if any."""
    return next(wall_times(expression, start, end), None)


def count_wall_times(expression: CronExpression, start: datetime, end: datetime) -> int:
    """How many naive times in [start, end) match."""
    first, last = _ceil_second(start), _ceil_second(end)
    total = 0
    for day in _matching_days(expression, first.date(), last.date()):
        low = _second_of_day(first) if day == first.date() else 0
        high = _second_of_day(last) if day == last.date() else _DAY_SECONDS
        total += _count_in_day(expression, low, high)
    return total


@lru_cache(maxsize=256)
def union_times_per_day(expressions: tuple[CronExpression, ...]) -> int:
    """How many distinct times a day has on which every one of `expressions` matches.

    Each expression's times of a day are a product (hours x minutes x seconds); the union
    is counted hour by hour and minute by minute over the expressions that allow them.
    """
    total = 0
    for hour in sorted({h for e in expressions for h in e.hours}):
        with_hour = [e for e in expressions if hour in e.hours]
        for minute in sorted({m for e in with_hour for m in e.minutes}):
            total += len({s for e in with_hour if minute in e.minutes for s in e.seconds})
    return total


def _matching_days(expression: CronExpression, first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        if day.month in expression.months:
            for number in _days_of_month(expression, day.year, day.month):
                if number < day.day:
                    continue
                match = day.replace(day=number)
                if match > last:
                    return
                yield match
        day = _first_of_next_month(day)


@lru_cache(maxsize=4096)
def _days_of_month(expression: CronExpression, year: int, month: int) -> tuple[int, ...]:
    """The days of a month the date fields allow: a yearly or monthly schedule's next
    time is then found without checking the month's other days one by one."""
    length = calendar.monthrange(year, month)[1]
    return tuple(d for d in range(1, length + 1) if expression.matches_date(date(year, month, d)))


def _seconds_in_day(expression: CronExpression, low: int, high: int) -> Iterator[int]:
    for hour in expression.hours:
        hour_start = hour * 3600
        if hour_start + 3600 <= low:
            continue
        if hour_start >= high:
            return
        for minute in expression.minutes:
            minute_start = hour_start + minute * 60
            if minute_start + 60 <= low:
                continue
            if minute_start >= high:
                return
            seconds = expression.seconds
            for second in seconds[bisect_left(seconds, low - minute_start) :]:
                if minute_start + second >= high:
                    return
                yield minute_start + second


def _count_in_day(expression: CronExpression, low: int, high: int) -> int:
    if low <= 0 and high >= _DAY_SECONDS:
        return expression.times_per_day
    seconds = expression.seconds
    total = 0
    for hour in expression.hours:
        hour_start = hour * 3600
        if hour_start + 3600 <= low:
            continue
        if hour_start >= high:
            break
        for minute in expression.minutes:
            minute_start = hour_start + minute * 60
            if minute_start + 60 <= low:
                continue
            if minute_start >= high:
                break
            total += bisect_left(seconds, high - minute_start) - bisect_left(
                seconds, low - minute_start
            )
    return total


def _ceil_second(moment: datetime) -> datetime:
    # Matches are whole seconds: a time at or after 10.5 s starts at 11 s, and one
    # before 10.5 s ends at 10 s, the same as before 11 s.
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _second_of_day(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _clock(second_of_day: int) -> time:
    hour, rest = divmod(second_of_day, 3600)
    return time(hour, *divmod(rest, 60))


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)
