"""Planning a backfill of a range: which times start, which are left and why (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trigger_operator.models.calendar import Exclusions
from trigger_operator.schedule.backfill import (
    RANGE_LIMIT,
    BackfillTooLarge,
    Known,
    LeftReason,
    plan_backfill,
)
from trigger_operator.schedule.calendars import compile_exclusions
from trigger_operator.schedule.times import compile_schedule

HOURLY = compile_schedule(schedule="0 * * * *", run_at=None, time_zone="UTC")
NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


def hour(h: int) -> datetime:
    return datetime(2026, 11, 26, h, tzinfo=UTC)


def test_the_range_is_inclusive_and_known_times_are_left_with_their_reason() -> None:
    plan = plan_backfill(
        HOURLY,
        start=hour(2),
        end=hour(6),
        now=NOW,
        known={hour(3): Known.RAN, hour(4): Known.SKIPPED, hour(5): Known.MISSED},
        max_runs=100,
    )

    assert plan.start == (hour(2), hour(5), hour(6))  # a missed time is started
    assert plan.left == ((hour(3), LeftReason.ALREADY_RAN), (hour(4), LeftReason.SKIPPED))
    assert plan.left_by_reason == {"AlreadyRan": 1, "Skipped": 1}


def test_max_runs_starts_the_oldest_and_leaves_the_rest() -> None:
    plan = plan_backfill(HOURLY, start=hour(0), end=hour(5), now=NOW, known={}, max_runs=2)

    assert plan.start == (hour(0), hour(1))
    assert [reason for _, reason in plan.left] == [LeftReason.MAX_RUNS] * 4


def test_times_after_now_are_the_schedulers_not_the_backfills() -> None:
    plan = plan_backfill(HOURLY, start=hour(11), end=hour(23), now=NOW, known={}, max_runs=100)

    assert plan.start == (hour(11), hour(12))


def test_a_range_entirely_in_the_future_plans_nothing() -> None:
    plan = plan_backfill(HOURLY, start=hour(13), end=hour(14), now=NOW, known={}, max_runs=9)

    assert plan.start == () and plan.left == ()


def test_a_second_identical_backfill_starts_none_of_what_the_first_ran() -> None:
    first = plan_backfill(HOURLY, start=hour(1), end=hour(4), now=NOW, known={}, max_runs=9)
    known = dict.fromkeys(first.start, Known.RAN)

    again = plan_backfill(HOURLY, start=hour(1), end=hour(4), now=NOW, known=known, max_runs=9)

    assert again.start == ()
    assert again.left_by_reason == {"AlreadyRan": 4}


def test_a_range_of_too_many_times_is_refused_before_listing_them() -> None:
    every_second = compile_schedule(schedule="* * * * * *", run_at=None, time_zone="UTC")

    with pytest.raises(BackfillTooLarge, match="narrow it"):
        plan_backfill(
            every_second,
            start=NOW - timedelta(seconds=RANGE_LIMIT + 5),
            end=NOW,
            now=NOW,
            known={},
            max_runs=10,
        )


def test_a_time_a_calendar_excludes_is_left_excluded_never_started() -> None:
    holidays = compile_exclusions(
        [("holidays", "UTC", Exclusions.model_validate({"dates": ["2026-11-26"]}))],
        None,
        time_zone="UTC",
    )
    daily = compile_schedule(schedule="0 9 * * *", run_at=None, time_zone="UTC")
    start = datetime(2026, 11, 24, tzinfo=UTC)

    plan = plan_backfill(
        daily,
        start=start,
        end=datetime(2026, 11, 27, 23, tzinfo=UTC),
        now=datetime(2026, 11, 28, tzinfo=UTC),
        known={},
        max_runs=100,
        excluded_by=holidays.excluded_by,
    )

    nine = [start.replace(day=day, hour=9) for day in (24, 25, 26, 27)]
    assert plan.start == (nine[0], nine[1], nine[3])
    assert plan.left == ((nine[2], LeftReason.EXCLUDED),)
    assert plan.left_by_reason == {"Excluded": 1}
