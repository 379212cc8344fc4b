"""`L`, `5L`, `2#2`, `?` and `H`: checked against a brute-force oracle minute by minute."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.schedule.oracle import brute_force_times
from trigger_operator.schedule.cron import CronExpression, parse_cron
from trigger_operator.schedule.errors import InvalidSchedule
from trigger_operator.schedule.walltime import count_wall_times, wall_times

START, END = date(2024, 1, 1), date(2029, 1, 1)  # five years, two of them leap years


def naive(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)  # noqa: DTZ001


def listed(expression: CronExpression, start: date = START, end: date = END) -> list[datetime]:
    return list(wall_times(expression, naive(start), naive(end)))


@pytest.mark.parametrize(
    "text",
    [
        "0 0 L * *",  # the last day of every month
        "30 12 L 2 *",  # 29 February in leap years, else the 28th
        "0 9 * * 5L",  # the last Friday
        "0 9 * * FRIL",
        "0 9 * * L5",  # croniter's spelling of the same
        "0 9 * * 2#2",  # the second Tuesday
        "0 9 * * TUE#2",
        "0 9 * * 0#5",  # a fifth Sunday: only some months
        "0 9 * * 1#1,5L",  # the first Monday and the last Friday
        "0 9 1,L * *",
        "0 9 L * 1#1",  # both day fields restricted: either matches
        "0 9 ? * 5L",  # ? is *
        "0 9 L * ?",
        "0 9 * 2 4#5",  # a fifth Thursday in February: only in leap years
        "15,45 */6 L 1,7 *",
    ],
)
def test_extensions_match_what_the_oracle_reads_minute_by_minute(text: str) -> None:
    expression = parse_cron(text)
    expected = list(brute_force_times(text.replace("L5", "5L"), START, END))
    assert expected, "the oracle finds times: the comparison is not vacuous"
    assert listed(expression) == expected
    assert count_wall_times(expression, naive(START), naive(END)) == len(expected)


def test_the_last_day_of_february_follows_leap_years() -> None:
    times = listed(parse_cron("0 0 L 2 *"))
    assert [t.day for t in times] == [29, 28, 28, 28, 29]


# Day fields of the extended grammar, and small time fields so that listing stays cheap.
day_fields = st.sampled_from(["*", "L", "1,L", "15", "*/10", "?", "L,10-12"])
weekday_fields = st.sampled_from(
    ["*", "?", "5L", "2#2", "MON#1,FRI#3", "0L,6L", "1#5", "MON-FRI", "SUN"]
)
extended = st.builds(
    lambda m, h, d, mo, w: f"{m} {h} {d} {mo} {w}",
    st.sampled_from(["0", "30", "0,45", "*/20"]),
    st.sampled_from(["0", "12", "6-7", "*/8"]),
    day_fields,
    st.sampled_from(["*", "2", "FEB,MAR", "*/3", "12"]),
    weekday_fields,
)


@settings(max_examples=150, deadline=None)
@given(text=extended)
def test_extended_expressions_list_and_count_what_the_oracle_finds(text: str) -> None:
    try:
        expression = parse_cron(text)
    except InvalidSchedule:
        # Only an impossible date is refused, and the oracle agrees it never fires.
        assert not list(brute_force_times(text, START, END))
        return
    expected = list(brute_force_times(text, START, date(2027, 1, 1)))
    assert listed(expression, START, date(2027, 1, 1)) == expected
    assert count_wall_times(expression, naive(START), datetime(2027, 1, 1)) == len(expected)  # noqa: DTZ001


def _uids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(n)]


def test_h_is_stable_per_uid_and_differs_between_uids() -> None:
    first, second = _uids(2)
    assert parse_cron("H H * * *", hash_key=first) == parse_cron("H H * * *", hash_key=first)
    assert parse_cron("H H * * *", hash_key=first) != parse_cron("H H * * *", hash_key=second)


def test_a_thousand_h_h_triggers_spread_over_the_day() -> None:
    slots: Counter[tuple[int, int]] = Counter()
    for uid in _uids(1000):
        expression = parse_cron("H H * * *", hash_key=uid)
        (hour,), (minute,) = expression.hours, expression.minutes
        slots[(hour, minute)] += 1
    hours = Counter(hour for hour, _ in slots.elements())
    # 1000 independent draws from 1440 minutes fill about 720 of them; a correlated hash
    # (croniter's own CRC-32 shifts) fills at most 240.
    assert len(slots) > 600
    assert set(hours) == set(range(24))
    assert max(hours.values()) < 80
    assert max(slots.values()) <= 6


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("H H * * *", r"{m} {h} * * *"),
        ("H(0-29) H(9-17) * * MON-FRI", r"{m} {h} * * MON-FRI"),
        ("H/15 * * * *", r"{m} * * * *"),
        ("0 H(8-20)/4 * * *", r"0 {h} * * *"),
        ("H H H * *", r"{m} {h} {d} * *"),
        ("0 0 * * H", r"0 0 * * {w}"),
        ("H/10 H * * * *", r"{s} {m} * * * *"),
    ],
)
def test_h_expands_to_values_inside_its_range_that_the_oracle_agrees_with(
    text: str, literal: str
) -> None:
    for uid in _uids(8):
        expression = parse_cron(text, hash_key=uid)
        fields = {
            "s": _as_field(expression.seconds),
            "m": _as_field(expression.minutes),
            "h": _as_field(expression.hours),
            "d": _as_field(sorted(expression.days)),
            "w": _as_field(sorted(expression.weekdays)),
        }
        written = literal.format(**fields)
        end = date(2024, 3, 1)
        assert (
            listed(expression, START, end)[:2000]
            == list(brute_force_times(written, START, end))[:2000]
        )
        _check_ranges(text, expression)


def _as_field(values: object) -> str:
    return ",".join(str(v) for v in values)  # type: ignore[attr-defined]


def _check_ranges(text: str, expression: CronExpression) -> None:
    if text.startswith("H(0-29)"):
        assert len(expression.minutes) == 1 and 0 <= expression.minutes[0] <= 29
        assert len(expression.hours) == 1 and 9 <= expression.hours[0] <= 17
    if text.startswith("H/15"):
        offset = expression.minutes[0]
        assert offset < 15 and expression.minutes == tuple(range(offset, 60, 15))
    if text.startswith("0 H(8-20)/4"):
        assert expression.hours[0] in range(8, 12)
        assert expression.hours == tuple(range(expression.hours[0], 21, 4))
    if text == "H H H * *":
        assert len(expression.days) == 1 and 1 <= min(expression.days) <= 28


def test_h_step_counts_as_an_interval_schedule_for_daylight_saving() -> None:
    assert parse_cron("0 H/2 * * *", hash_key="uid").interval_hours
    assert not parse_cron("0 H * * *", hash_key="uid").interval_hours


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "H * * * *",
            "minute field 'H': H is hashed from the trigger's uid; to preview it, give the uid",
        ),
        ("0 0 * * 5L,1", "last (L) and nth (#) days cannot be mixed with plain days"),
        ("0 0 * * 1#6", "day-of-week field '1#6': '#' takes 1 to 5"),
        ("0 0 * * 8L", "day-of-week field '8' out of range 0-7"),
        ("0 0 * * L", "day-of-week field 'L': write the last Friday as 5L"),
        ("0 0 15W * *", "day-of-month field '15W' is not a number"),
        ("0 0 LW * *", "day-of-month field 'LW' is not a number"),
        ("R * * * *", "minute field 'R' is not a number"),
        ("0 0 * * * * 2026", "expected 5 fields"),
        ("0 0 L * 1-3#2", "day-of-week field '1-3#2': write the last Friday as 5L"),
        ("0 L * * *", "hour field 'L' is not a number"),
        ("H(30-10) * * * *", "minute field 'H(30-10)': range start 30 is after its end 10"),
        ("H(0-99) * * * *", "minute field 'H(0-99)': 99 out of range 0-59"),
        ("H/0 * * * *", "minute field 'H/0': step must be at least 1"),
        ("HH * * * *", "minute field 'HH': write H, H(a-b), H/n or H(a-b)/n"),
        ("0 0 30 2 ?", "never fires"),
    ],
)
def test_what_croniter_accepts_but_this_grammar_does_not_is_refused_clearly(
    text: str, message: str
) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        parse_cron(text, hash_key=None if text.startswith("H *") else "uid")
    assert message in str(raised.value)
    assert str(raised.value).startswith("spec.schedule: ")


def test_every_error_message_names_a_field_or_the_shape() -> None:
    for text in ["0 0 * * 5L,1", "0 0 15W * *", "H(0-99) * * * *"]:
        with pytest.raises(InvalidSchedule) as raised:
            parse_cron(text, hash_key="uid")
        assert re.search(
            r"(second|minute|hour|day-of-month|month|day-of-week) field", str(raised.value)
        )
