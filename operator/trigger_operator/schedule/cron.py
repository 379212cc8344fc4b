"""The cron grammar: text in, a `CronExpression` (the sets each field allows) out.

Five fields, `minute hour day-of-month month day-of-week`, or six with seconds first.
Each field is a comma list of `*`, `N`, `N-M`, any of those with `/step`, and for the
month and day-of-week fields names (JAN..DEC, SUN..SAT, any case); day-of-week 7 is
Sunday. `N/step` means `N-max/step`. The macros @yearly @annually @monthly @weekly @daily
@midnight @hourly stand for their five-field forms. Beyond that:

- `L` in day-of-month: the last day of the month;
- `5L` (or croniter's `L5`) in day-of-week: the last Friday of the month; `2#2`: the
  second Tuesday (`#1` to `#5`); these cannot be mixed with plain days in one field;
- `?` as a whole day field: the same as `*` (Quartz writes it in the unused day field);
- `H`, `H(a-b)`, `H/n`, `H(a-b)/n` in any field: a value hashed from the trigger's uid
  (`hash_key`), stable across restarts and replicas, so triggers that share `H H * * *`
  spread over the day. `H` in day-of-month hashes into 1-28, so that it fires every month.

croniter expands the fields (ranges, steps, names, `L`, `#`); this module checks each list
item first, for messages that name the field and the item, and to bridge where croniter
reads the same text differently from this grammar: croniter expands an equal range
(`5-5`) to the whole field and a reversed one (`5-2`) by wrapping around, and accepts
`W`, `R`, a seventh (year) field, and `?` anywhere in a field; here `5-5` is 5, a reversed
range is an error except for `FRI-SUN` (Sunday as 7), and the rest is refused. `H` is
expanded here, not by croniter: croniter hashes every field from one CRC-32, whose
minute and hour values are correlated (a thousand `H H * * *` triggers would share about
240 of the day's 1440 minutes), and rewrites the macros into hashed forms when given a
key. Matching and walking stay ours (walltime.py, times.py), with our daylight-saving
rules: croniter's iteration is not used.

Day-of-month and day-of-week combine as in Vixie cron: a field counts as restricted
unless its text starts with `*` (or is `?`); when both are restricted a day matches if
either matches, otherwise it must match both (the unrestricted one matches every day
anyway, except for a `*/n` step, which still narrows the days).

A schedule whose day-of-month can never fall in its months (`0 0 30 2 *`) is rejected
as never firing, so that no caller searches for a time that does not exist.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from croniter import CroniterError, croniter

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
_INTERVAL = re.compile(r"\*(/[0-9]+)?|H/[0-9]+", re.IGNORECASE)
_HASH = re.compile(r"H(?:\((?P<low>[0-9]+)-(?P<high>[0-9]+)\))?(?:/(?P<step>[0-9]+))?")
_LAST_WEEKDAY = re.compile(r"(?P<day>[0-9]+|[A-Z]{3})L|L(?P<croniter_day>[0-9]+|[A-Z]{3})")
_NTH_WEEKDAY = re.compile(r"(?P<day>[0-9]+|[A-Z]{3})#(?P<nth>[0-9]+)")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    # `*` and `N/step` stop here: day-of-week 7 is only an alias of 0 for explicit ranges.
    star_high: int
    names: Mapping[str, int]
    # Where `H` draws from (day-of-month: 1-28, a day every month has).
    hash_high: int


_SECOND = _Field("second", 0, 59, 59, {}, 59)
_MINUTE = _Field("minute", 0, 59, 59, {}, 59)
_HOUR = _Field("hour", 0, 23, 23, {}, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 31, {}, 28)
_MONTH = _Field("month", 1, 12, 12, {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}, 12)
_DAY_OF_WEEK = _Field("day-of-week", 0, 7, 6, {name: i for i, name in enumerate(_DAY_NAMES)}, 6)
_FIELDS = (_SECOND, _MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)


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
    """The hour field is `*`, `*/n` or `H/n`: a repeated wall-clock hour is a distinct
    interval."""
    last_day: bool = False
    """`L` in day-of-month: the last day of each month matches."""
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    """(weekday, n) from `weekday#n`: the n-th such weekday of the month matches."""
    last_weekdays: frozenset[int] = frozenset()
    """From `weekdayL`: the last such weekday of the month matches."""

    @property
    def times_per_day(self) -> int:
        """How many times a matching day has."""
        return len(self.hours) * len(self.minutes) * len(self.seconds)

    def matches_date(self, day: date) -> bool:
        """Whether the month, day-of-month and day-of-week fields allow `day`."""
        if day.month not in self.months:
            return False
        month_length = calendar.monthrange(day.year, day.month)[1]
        in_days = day.day in self.days or (self.last_day and day.day == month_length)
        weekday = day.isoweekday() % 7
        in_weekdays = (
            weekday in self.weekdays
            or (weekday, (day.day - 1) // 7 + 1) in self.nth_weekdays
            or (weekday in self.last_weekdays and day.day + 7 > month_length)
        )
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


def parse_cron(text: str, *, hash_key: str | None = None) -> CronExpression:
    """Read a cron expression; raise InvalidSchedule naming the field and the problem.

    `hash_key` (the trigger's uid) is what `H` hashes; without one, `H` is an error.
    """
    fields = _split(text)
    prepared = [
        _prepare_field(value, field, hash_key=hash_key)
        for value, field in zip(fields, _FIELDS, strict=True)
    ]
    expanded, nth = _expand(prepared)
    _, _, hour, day, month, weekday = fields
    day_values = _values(expanded[2], _DAY_OF_MONTH)
    weekday_values = {v % 7 for v in _values(expanded[4], _DAY_OF_WEEK)} - set(nth)
    expression = CronExpression(
        text=text.strip(),
        seconds=tuple(sorted(_values(expanded[5], _SECOND))),
        minutes=tuple(sorted(_values(expanded[0], _MINUTE))),
        hours=tuple(sorted(_values(expanded[1], _HOUR))),
        days=frozenset(day_values),
        months=frozenset(_values(expanded[3], _MONTH)),
        weekdays=frozenset(weekday_values),
        days_restricted=not _unrestricted(day),
        weekdays_restricted=not _unrestricted(weekday),
        interval_hours=_INTERVAL.fullmatch(hour) is not None,
        last_day="l" in expanded[2],
        nth_weekdays=frozenset(
            (int(wd) % 7, int(n)) for wd, ns in nth.items() for n in ns if n != "l"
        ),
        last_weekdays=frozenset(int(wd) % 7 for wd, ns in nth.items() if "l" in ns),
    )
    _check_fires(expression, day_text=day, month_text=month)
    return expression


def _split(text: str) -> list[str]:
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
        return ["0", *fields]
    if len(fields) != 6:
        raise InvalidSchedule(
            "expected 5 fields (minute hour day-of-month month day-of-week) "
            f"or 6 with seconds first, got {len(fields)}"
        )
    return fields


def _unrestricted(text: str) -> bool:
    return text.startswith("*") or text == "?"


def _prepare_field(text: str, field: _Field, *, hash_key: str | None) -> str:
    """Check each list item of a field and rewrite it into the text croniter expands."""
    if text == "?":
        if field not in (_DAY_OF_MONTH, _DAY_OF_WEEK):
            raise InvalidSchedule(f"{field.name} field '?': '?' is only for the day fields")
        return "*"
    items = text.split(",")
    special = 0
    for index, item in enumerate(items):
        if not item:
            raise InvalidSchedule(f"{field.name} field '{text}' has an empty list item")
        upper = item.upper()
        if upper.startswith("H"):
            items[index] = _hashed(upper, field, hash_key=hash_key, index=index)
        elif field is _DAY_OF_MONTH and upper == "L":
            items[index] = "L"
        elif field is _DAY_OF_WEEK and (rewritten := _special_weekday(upper, item)) is not None:
            items[index] = rewritten
            special += 1
        else:
            items[index] = _plain_item(item, field)
    if special and special != len(items):
        raise InvalidSchedule(
            f"{field.name} field '{text}': last (L) and nth (#) days cannot be mixed "
            "with plain days in one field"
        )
    return ",".join(items)


def _special_weekday(upper: str, item: str) -> str | None:
    """`5L`/`L5` and `2#2` in day-of-week, as croniter spells them; None for other items."""
    last = _LAST_WEEKDAY.fullmatch(upper)
    if last is not None:
        day = _value(last["day"] or last["croniter_day"], _DAY_OF_WEEK, item) % 7
        return f"L{day}"
    nth = _NTH_WEEKDAY.fullmatch(upper)
    if nth is not None:
        day = _value(nth["day"], _DAY_OF_WEEK, item) % 7
        if not 1 <= int(nth["nth"]) <= 5:
            raise InvalidSchedule(f"day-of-week field '{item}': '#' takes 1 to 5")
        return f"{day}#{int(nth['nth'])}"
    if "#" in upper or "L" in upper:  # no day name has an L
        raise InvalidSchedule(
            f"day-of-week field '{item}': write the last Friday as 5L and the second Tuesday as 2#2"
        )
    return None


def _plain_item(item: str, field: _Field) -> str:
    """`*`, `N`, `N-M`, with an optional `/step`, checked and made unambiguous."""
    base, slash, step_text = item.partition("/")
    if slash:
        if _NUMBER.fullmatch(step_text) is None:
            raise InvalidSchedule(
                f"{field.name} field '{item}': step '{step_text}' is not a number"
            )
        if int(step_text) < 1:
            raise InvalidSchedule(f"{field.name} field '{item}': step must be at least 1")
    if base == "*":
        return item
    if "-" in base:
        start_text, _, end_text = base.partition("-")
        low, high = _value(start_text, field, item), _value(end_text, field, item)
        if field is _DAY_OF_WEEK and high == 0 and low > 0:
            high = 7  # FRI-SUN: Sunday as the end of a range is day 7.
        if low > high:
            raise InvalidSchedule(
                f"{field.name} field '{item}': range start {low} is after its end {high}"
            )
        # croniter reads an equal range as the whole field: here it is the one value.
        rewritten = str(low) if low == high else f"{low}-{high}"
        return rewritten + (f"/{step_text}" if slash and low != high else "")
    low = _value(base, field, item)
    if slash and field is _DAY_OF_WEEK:
        low %= 7  # 7/2 steps from Sunday, as 0/2 does (7 is past the end a step runs to)
    return f"{low}/{step_text}" if slash else str(low)


def _hashed(upper: str, field: _Field, *, hash_key: str | None, index: int) -> str:
    """`H`, `H(a-b)`, `H/n`, `H(a-b)/n`: the value or stepped range, hashed from the key."""
    match = _HASH.fullmatch(upper)
    if match is None:
        raise InvalidSchedule(
            f"{field.name} field '{upper}': write H, H(a-b), H/n or H(a-b)/n "
            "('R', random, is not supported: a schedule must be stable)"
        )
    if hash_key is None:
        raise InvalidSchedule(
            f"{field.name} field '{upper}': H is hashed from the trigger's uid; "
            "to preview it, give the uid (--uid, or metadata.uid in the manifest)"
        )
    low, high = field.low, field.hash_high
    if match["low"] is not None:
        low, high = int(match["low"]), int(match["high"])
        for bound in (low, high):
            if not field.low <= bound <= field.star_high:
                raise InvalidSchedule(
                    f"{field.name} field '{upper}': {bound} out of range "
                    f"{field.low}-{field.star_high}"
                )
        if low > high:
            raise InvalidSchedule(
                f"{field.name} field '{upper}': range start {low} is after its end {high}"
            )
    step = int(match["step"]) if match["step"] is not None else None
    if step is not None and step < 1:
        raise InvalidSchedule(f"{field.name} field '{upper}': step must be at least 1")
    # A step draws the phase from the first period; without one, the value from the range.
    draw_high = min(high, low + step - 1) if step is not None else high
    digest = hashlib.sha256(f"{hash_key}\x00{field.name}\x00{index}".encode()).digest()
    value = low + int.from_bytes(digest[:8], "big") % (draw_high - low + 1)
    if step is None or value == high:
        return str(value)
    return f"{value}-{high}/{step}"


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


def _expand(prepared: Sequence[str]) -> tuple[list[list[int | str]], dict[int, set[int | str]]]:
    """croniter's expansion of checked fields (seconds first), as (fields, nth weekdays).

    croniter returns the fields in its own order: minute hour day month weekday second.
    """
    try:
        expanded, nth = croniter.expand(" ".join(prepared), second_at_beginning=True)
    except CroniterError as error:  # the checks above should leave nothing to refuse
        raise InvalidSchedule(f"not accepted: {error}") from None
    return expanded, nth


def _values(expanded: list[int | str], field: _Field) -> set[int]:
    if "*" in expanded:
        return set(range(field.low, field.star_high + 1))
    return {int(value) for value in expanded if value != "l"}


def _check_fires(expression: CronExpression, *, day_text: str, month_text: str) -> None:
    # With both day fields restricted a weekday can match any month, so only the
    # day-of-month-and-month combination can be impossible. Within 400 years every
    # possible date falls on every weekday, so anything that passes here does fire.
    if expression.days_restricted and expression.weekdays_restricted:
        return
    if expression.last_day:
        return
    if any(day <= _LONGEST_MONTH[month] for month in expression.months for day in expression.days):
        return
    raise InvalidSchedule(
        f"never fires: day-of-month field '{day_text}' has no day in month field '{month_text}'"
    )
