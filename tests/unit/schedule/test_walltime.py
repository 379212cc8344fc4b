"""Naive wall-clock matching: listing and counting agree, bounds are half-open."""

from __future__ import annotations

from datetime import datetime

import pytest

from trigger_operator.schedule.cron import parse_cron
from trigger_operator.schedule.walltime import count_wall_times, first_wall_time, wall_times


def wall(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    """A naive wall-clock time: cron fields are read on a clock without a zone."""
    return datetime(year, month, day, hour, minute, second, micro)  # noqa: DTZ001


def test_times_are_listed_in_order_within_a_half_open_range() -> None:
    expression = parse_cron("0 */6 * * *")
    listed = list(wall_times(expression, wall(2026, 1, 1, 6), wall(2026, 1, 2, 6)))
    assert listed == [
        wall(2026, 1, 1, 6),
        wall(2026, 1, 1, 12),
        wall(2026, 1, 1, 18),
        wall(2026, 1, 2, 0),
    ]


def test_a_fraction_of_a_second_moves_the_bounds_to_the_next_whole_second() -> None:
    expression = parse_cron("* * * * * *")
    start = wall(2026, 1, 1, 0, 0, 0, 500_000)
    end = wall(2026, 1, 1, 0, 0, 3, 1)
    assert list(wall_times(expression, start, end)) == [
        wall(2026, 1, 1, 0, 0, 1),
        wall(2026, 1, 1, 0, 0, 2),
        wall(2026, 1, 1, 0, 0, 3),
    ]
    assert count_wall_times(expression, start, end) == 3


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("*/7 */3 * * *", wall(2026, 1, 1, 1, 13), wall(2026, 1, 4, 17, 2)),
        ("*/13 5-9 * * * *", wall(2026, 2, 27, 7, 30, 5), wall(2026, 3, 2, 6)),
        ("0 0 13 * FRI", wall(2025, 1, 1), wall(2026, 12, 31)),
        ("0 12 * FEB *", wall(2024, 1, 15), wall(2025, 3, 1)),
        ("15 10 * * *", wall(2026, 1, 1, 10, 15), wall(2026, 1, 1, 10, 15)),
    ],
)
def test_counting_agrees_with_listing(text: str, start: datetime, end: datetime) -> None:
    expression = parse_cron(text)
    assert count_wall_times(expression, start, end) == len(list(wall_times(expression, start, end)))


def test_a_year_of_seconds_is_counted_without_listing_them() -> None:
    expression = parse_cron("* * * * * *")
    assert count_wall_times(expression, wall(2025, 1, 1), wall(2026, 1, 1)) == 31_536_000


def test_the_first_time_is_none_when_the_range_has_no_match() -> None:
    expression = parse_cron("0 0 29 2 *")
    assert first_wall_time(expression, wall(2025, 1, 1), wall(2027, 1, 1)) is None
    assert first_wall_time(expression, wall(2025, 1, 1), wall(2029, 1, 1)) == wall(2028, 2, 29)
