"""A brute-force cron oracle: does this wall-clock minute match this text, read literally?

It shares nothing with the parser: each list item is read as a predicate on one value (or,
for `L` and `#`, on the date), the way the grammar is documented. `H` is not its business:
tests give it the text with H already replaced by the value the parser chose.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta

NAMES = {
    **{name: i + 1 for i, name in enumerate(calendar.month_abbr[1:])},
    **{name: (i + 1) % 7 for i, name in enumerate(calendar.day_abbr)},
}
BOUNDS = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12)}


def _number(token: str) -> int:
    return int(token) if token.isdigit() else NAMES[token.title()]


def _item_matches(item: str, value: int, low: int, high: int, *, weekday: bool) -> bool:
    base, _, step_text = item.partition("/")
    step = int(step_text) if step_text else 1
    if base in ("*", "?"):
        start, end = low, high
    elif "-" in base:
        start, end = (_number(part) for part in base.split("-"))
        if weekday and end == 0 and start > 0:
            end = 7
    else:
        start = _number(base)
        if weekday and step_text:
            start %= 7  # Sunday written 7 starts a step as 0 does
        end = high if step_text else start
    candidates = {v for v in range(start, end + 1, step)}
    if weekday:
        candidates = {v % 7 for v in candidates}
    return value in candidates


def _day_item(item: str, day: date) -> bool:
    length = calendar.monthrange(day.year, day.month)[1]
    if item.upper() == "L":
        return day.day == length
    return _item_matches(item, day.day, 1, 31, weekday=False)


def _weekday_item(item: str, day: date) -> bool:
    weekday = day.isoweekday() % 7
    length = calendar.monthrange(day.year, day.month)[1]
    upper = item.upper()
    if upper.endswith("L"):
        return weekday == _number(upper[:-1]) % 7 and day.day + 7 > length
    if "#" in upper:
        day_text, nth = upper.split("#")
        return weekday == _number(day_text) % 7 and (day.day - 1) // 7 + 1 == int(nth)
    return _item_matches(item, weekday, 0, 6, weekday=True)


def date_matches(text: str, day: date) -> bool:
    """Whether `day` matches the day-of-month, month and day-of-week fields of `text`."""
    fields = text.split()
    dom, month, dow = fields[-3:]
    if not any(_item_matches(i, day.month, 1, 12, weekday=False) for i in month.split(",")):
        return False
    in_days = any(_day_item(i, day) for i in dom.split(","))
    in_weekdays = any(_weekday_item(i, day) for i in dow.split(","))
    restricted = (not dom.startswith("*") and dom != "?", not dow.startswith("*") and dow != "?")
    if all(restricted):
        return in_days or in_weekdays
    return in_days and in_weekdays


def _time_field(field_text: str, value: int, name: str) -> bool:
    low, high = BOUNDS[name]
    return any(_item_matches(i, value, low, high, weekday=False) for i in field_text.split(","))


def brute_force_times(text: str, start: date, end: date) -> Iterator[datetime]:
    """Every matching time of [start, end): each second of each minute of each hour, read
    field by field, on the days whose date matches (no time of another day can match)."""
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    second, minute, hour = fields[:3]
    seconds = [s for s in range(60) if _time_field(second, s, "second")]
    day = start
    while day < end:
        if date_matches(text, day):
            for h in range(24):
                if not _time_field(hour, h, "hour"):
                    continue
                for m in range(60):
                    if _time_field(minute, m, "minute"):
                        for s in seconds:
                            yield datetime(day.year, day.month, day.day, h, m, s)  # noqa: DTZ001
        day += timedelta(days=1)
