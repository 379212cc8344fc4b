"""The cron grammar: fields, names, steps, macros, the day rule, and error messages."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from trigger_operator.schedule.cron import MACROS, parse_cron
from trigger_operator.schedule.errors import InvalidSchedule


def wall(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    """A naive wall-clock time: cron fields are read on a clock without a zone."""
    return datetime(year, month, day, hour, minute, second, micro)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
        ("10-50/20 * * * *", "minutes", (10, 30, 50)),
        ("5/20 * * * *", "minutes", (5, 25, 45)),
        ("1,2,10-12 * * * *", "minutes", (1, 2, 10, 11, 12)),
        ("0 */6 * * *", "hours", (0, 6, 12, 18)),
        ("0 0 * jan-Mar *", "months", frozenset({1, 2, 3})),
        ("0 0 * JAN,dec *", "months", frozenset({1, 12})),
        ("0 0 * * mon-FRI", "weekdays", frozenset({1, 2, 3, 4, 5})),
        ("0 0 * * 7", "weekdays", frozenset({0})),
        ("0 0 * * 5-7", "weekdays", frozenset({5, 6, 0})),
        ("0 0 * * FRI-SUN", "weekdays", frozenset({5, 6, 0})),
        ("0 0 * * */2", "weekdays", frozenset({0, 2, 4, 6})),
        ("0 0 * * 1/2", "weekdays", frozenset({1, 3, 5})),
        ("0 0 * * 7/2", "weekdays", frozenset({0, 2, 4, 6})),
        ("5-5 * * * *", "minutes", (5,)),  # croniter alone would read the whole hour
        ("0 0 */10 * *", "days", frozenset({1, 11, 21, 31})),
        ("0 0 * * *", "seconds", (0,)),
        ("*/10 * * * * *", "seconds", (0, 10, 20, 30, 40, 50)),
        ("30 5 4 * * *", "minutes", (5,)),
        ("30 5 4 * * *", "hours", (4,)),
    ],
)
def test_fields_parse_to_the_values_they_allow(text: str, attribute: str, expected: object) -> None:
    assert getattr(parse_cron(text), attribute) == expected


@pytest.mark.parametrize("macro", sorted(MACROS))
def test_macros_mean_their_five_field_forms(macro: str) -> None:
    expanded = parse_cron(MACROS[macro])
    parsed = parse_cron(macro.upper())
    assert (parsed.seconds, parsed.minutes, parsed.hours) == (
        expanded.seconds,
        expanded.minutes,
        expanded.hours,
    )
    assert (parsed.days, parsed.months, parsed.weekdays) == (
        expanded.days,
        expanded.months,
        expanded.weekdays,
    )


@pytest.mark.parametrize(
    ("text", "days_restricted", "weekdays_restricted"),
    [
        ("0 0 * * *", False, False),
        ("0 0 13 * *", True, False),
        ("0 0 * * FRI", False, True),
        ("0 0 13 * FRI", True, True),
        ("0 0 */2 * FRI", False, True),
        ("0 0 1-31 * *", True, False),
    ],
)
def test_a_day_field_is_restricted_unless_it_starts_with_a_star(
    text: str, days_restricted: bool, weekdays_restricted: bool
) -> None:
    expression = parse_cron(text)
    assert expression.days_restricted is days_restricted
    assert expression.weekdays_restricted is weekdays_restricted


@pytest.mark.parametrize(
    ("text", "day", "matches"),
    [
        # Both restricted: either field is enough (2026-01-13 is a Tuesday, 01-16 a Friday).
        ("0 0 13 * FRI", date(2026, 1, 13), True),
        ("0 0 13 * FRI", date(2026, 1, 16), True),
        ("0 0 13 * FRI", date(2026, 1, 14), False),
        # A `*/2` day-of-month is not restricted, so both must match.
        ("0 0 */2 * FRI", date(2026, 1, 9), True),
        ("0 0 */2 * FRI", date(2026, 1, 16), False),
        ("0 0 */2 * FRI", date(2026, 1, 11), False),
        ("0 0 * JAN MON", date(2026, 1, 5), True),
        ("0 0 * JAN MON", date(2026, 2, 2), False),
    ],
)
def test_day_of_month_and_day_of_week_combine_as_in_vixie_cron(
    text: str, day: date, matches: bool
) -> None:
    assert parse_cron(text).matches_date(day) is matches


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("0 * * * *", True),
        ("0 */2 * * *", True),
        ("@hourly", True),
        ("0 1 * * *", False),
        ("0 0-23/2 * * *", False),
        ("0 1,13 * * *", False),
        ("0 0 * * * *", True),
    ],
)
def test_an_hour_field_of_star_or_star_step_marks_an_interval_schedule(
    text: str, interval: bool
) -> None:
    assert parse_cron(text).interval_hours is interval


def test_a_match_needs_every_field_and_a_whole_second() -> None:
    expression = parse_cron("30 15 9 * * MON")
    assert expression.matches(wall(2026, 1, 5, 9, 15, 30))
    assert not expression.matches(wall(2026, 1, 5, 9, 15, 31))
    assert not expression.matches(wall(2026, 1, 5, 9, 15, 30, 500))
    assert not expression.matches(wall(2026, 1, 6, 9, 15, 30))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "spec.schedule: is empty"),
        ("61 * * * *", "spec.schedule: minute field '61' out of range 0-59"),
        ("0 24 * * *", "spec.schedule: hour field '24' out of range 0-23"),
        ("0 0 0 * *", "spec.schedule: day-of-month field '0' out of range 1-31"),
        ("0 0 * 13 *", "spec.schedule: month field '13' out of range 1-12"),
        ("0 0 * * 8", "spec.schedule: day-of-week field '8' out of range 0-7"),
        ("60 * * * * *", "spec.schedule: second field '60' out of range 0-59"),
        ("5,61 * * * *", "spec.schedule: minute field '61' out of range 0-59"),
        (
            "* * * *",
            "spec.schedule: expected 5 fields (minute hour day-of-month month "
            "day-of-week) or 6 with seconds first, got 4",
        ),
        (
            "* * * * * * *",
            "spec.schedule: expected 5 fields (minute hour day-of-month month "
            "day-of-week) or 6 with seconds first, got 7",
        ),
        ("*/0 * * * *", "spec.schedule: minute field '*/0': step must be at least 1"),
        ("*/x * * * *", "spec.schedule: minute field '*/x': step 'x' is not a number"),
        ("0 5-2 * * *", "spec.schedule: hour field '5-2': range start 5 is after its end 2"),
        ("0 x * * *", "spec.schedule: hour field 'x' is not a number"),
        ("0 0 * FOO *", "spec.schedule: month field 'FOO' is not a number or a name"),
        ("0 0 * * MONDAY", "spec.schedule: day-of-week field 'MONDAY' is not a number or a name"),
        ("0 ? * * *", "spec.schedule: hour field '?': '?' is only for the day fields"),
        ("0 MON * * *", "spec.schedule: hour field 'MON' is not a number"),
        ("1,,2 * * * *", "spec.schedule: minute field '1,,2' has an empty list item"),
        ("-5 * * * *", "spec.schedule: minute field '-5' is missing a number"),
        (
            "@every 5m",
            "spec.schedule: unknown macro '@every 5m'; use one of @yearly, "
            "@annually, @monthly, @weekly, @daily, @midnight, @hourly",
        ),
        (
            "@reboot",
            "spec.schedule: unknown macro '@reboot'; use one of @yearly, "
            "@annually, @monthly, @weekly, @daily, @midnight, @hourly",
        ),
        (
            "0 0 30 2 *",
            "spec.schedule: never fires: day-of-month field '30' has no day in month field '2'",
        ),
        (
            "0 0 31 APR,JUN,SEP,NOV *",
            "spec.schedule: never fires: day-of-month field '31' "
            "has no day in month field 'APR,JUN,SEP,NOV'",
        ),
    ],
)
def test_invalid_expressions_name_the_field_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        parse_cron(text)
    assert str(raised.value) == message
    assert raised.value.reason == "InvalidSchedule"
    assert raised.value.field == "spec.schedule"


@pytest.mark.parametrize(
    "text",
    [
        "0 0 29 2 *",  # leap days exist
        "0 0 30 2 MON",  # both restricted: every Monday in February fires
        "0 0 31 * *",
    ],
)
def test_schedules_that_fire_somewhere_are_accepted(text: str) -> None:
    parse_cron(text)
