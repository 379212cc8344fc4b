"""The hand-written cron grammar, kept only until the croniter-based one in cron.py is proven
equivalent to it (tests/unit/schedule/test_cron_equivalence.py); nothing else imports it.

Five fields, `minute hour day-of-month month day-of-week`, or six with seconds first.
Each field is a comma list of `*`, `N`, `N-M`, any of those with `/step`, and for the
month and day-of-week fields names (JAN..DEC, SUN..SAT, any case); day-of-week 7 is
Sunday. `N/step` means `N-max/step`. The macros @yearly @annually @monthly @weekly @daily
@midnight @hourly stand for their five-field forms.

Day-of-month and day-of-week combine as in Vixie cron: a field counts as restricted
unless its text starts with `*`; when both are restricted a day matches if either
matches, otherwise it must match both (the unrestricted one matches every day anyway,
except for a `*/n` step, which still narrows the days).

A schedule whose day-of-month can never fall in its months (`0 0 30 2 *`) is rejected
as never firing, so that no caller searches for a time that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from trigger_operator.schedule.errors import InvalidSchedule

MACROS: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# The longest each month can be (February in a leap year), for the never-fires check.
_LONGEST_MONTH = dict(enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))
_NUMBER = re.compile(r"[0-9]+")
_INTERVAL = re.compile(r"\*(/[0-9]+)?")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    # `*` and `N/step` stop here: day-of-week 7 is only an alias of 0 for explicit ranges.
    star_high: int
    names: Mapping[str, int]


_SECOND = _Field("second", 0, 59, 59, {})
_MINUTE = _Field("minute", 0, 59, 59, {})
_HOUR = _Field("hour", 0, 23, 23, {})
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 31, {})
_MONTH = _Field("month", 1, 12, 12, {name: i + 1 for i, name in enumerate(_MONTH_NAMES)})
_DAY_OF_WEEK = _Field("day-of-week", 0, 7, 6, {name: i for i, name in enumerate(_DAY_NAMES)})


@dataclass(frozen=True)
class CronExpression:
    """The instants of a day a cron expression allows, read on a naive wall clock."""

    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday."""
    days_restricted: bool
    weekdays_restricted: bool
    interval_hours: bool
    """The hour field is `*` or `*/n`: a repeated wall-clock hour is a distinct interval."""

    @property
    def times_per_day(self) -> int:
        """How many times a matching day has."""
        return len(self.hours) * len(self.minutes) * len(self.seconds)

    def matches_date(self, day: date) -> bool:
        """Whether the month, day-of-month and day-of-week fields allow `day`."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, wall: datetime) -> bool:
        """Whether the naive wall-clock time `wall` (to the second) matches."""
        return (
            wall.microsecond == 0
            and wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and self.matches_date(wall.date())
        )


def parse_cron(text: str) -> CronExpression:
    """Read a cron expression; raise InvalidSchedule naming the field and the problem."""
    source = text.strip()
    if not source:
        raise InvalidSchedule("is empty")
    if source.startswith("@"):
        expanded = MACROS.get(source.lower())
        if expanded is None:
            raise InvalidSchedule(f"unknown macro '{source}'; use one of {', '.join(MACROS)}")
        fields = expanded.split()
    else:
        fields = source.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise InvalidSchedule(
            "expected 5 fields (minute hour day-of-month month day-of-week) "
            f"or 6 with seconds first, got {len(fields)}"
        )
    second, minute, hour, day, month, weekday = fields
    expression = CronExpression(
        text=source,
        seconds=tuple(sorted(_parse_field(second, _SECOND))),
        minutes=tuple(sorted(_parse_field(minute, _MINUTE))),
        hours=tuple(sorted(_parse_field(hour, _HOUR))),
        days=frozenset(_parse_field(day, _DAY_OF_MONTH)),
        months=frozenset(_parse_field(month, _MONTH)),
        weekdays=frozenset(v % 7 for v in _parse_field(weekday, _DAY_OF_WEEK)),
        days_restricted=not day.startswith("*"),
        weekdays_restricted=not weekday.startswith("*"),
        interval_hours=_INTERVAL.fullmatch(hour) is not None,
    )
    _check_fires(expression, day_text=day, month_text=month)
    return expression


def _parse_field(text: str, field: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidSchedule(f"{field.name} field '{text}' has an empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            step = _number(step_text, field, item)
            if step < 1:
                raise InvalidSchedule(f"{field.name} field '{item}': step must be at least 1")
        if base == "*":
            low, high = field.low, field.star_high
        elif "-" in base:
            start_text, _, end_text = base.partition("-")
            low, high = _value(start_text, field, item), _value(end_text, field, item)
            if field is _DAY_OF_WEEK and high == 0 and low > 0:
                high = 7  # FRI-SUN: Sunday as the end of a range is day 7.
            if low > high:
                raise InvalidSchedule(
                    f"{field.name} field '{item}': range start {low} is after its end {high}"
                )
        else:
            low = _value(base, field, item)
            high = field.star_high if slash else low
        values.update(range(low, high + 1, step))
    return values


def _value(token: str, field: _Field, item: str) -> int:
    if not token:
        raise InvalidSchedule(f"{field.name} field '{item}' is missing a number")
    named = field.names.get(token.upper())
    if named is not None:
        return named
    if _NUMBER.fullmatch(token) is None:
        kind = "a number or a name" if field.names else "a number"
        raise InvalidSchedule(f"{field.name} field '{token}' is not {kind}")
    value = int(token)
    if not field.low <= value <= field.high:
        raise InvalidSchedule(f"{field.name} field '{token}' out of range {field.low}-{field.high}")
    return value


def _number(token: str, field: _Field, item: str) -> int:
    if _NUMBER.fullmatch(token) is None:
        raise InvalidSchedule(f"{field.name} field '{item}': step '{token}' is not a number")
    return int(token)


def _check_fires(expression: CronExpression, *, day_text: str, month_text: str) -> None:
    # With both day fields restricted a weekday can match any month, so only the
    # day-of-month-and-month combination can be impossible. Within 400 years every
    # possible date falls on every weekday, so anything that passes here does fire.
    if expression.days_restricted and expression.weekdays_restricted:
        return
    if any(day <= _LONGEST_MONTH[month] for month in expression.months for day in expression.days):
        return
    raise InvalidSchedule(
        f"never fires: day-of-month field '{day_text}' has no day in month field '{month_text}'"
    )
