"""Missed-time planning: catchUp, maxCatchUpRuns, deadlines, edits, one-time triggers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.schedule.specs import make_spec
from trigger_operator.models.runs import RunKind
from trigger_operator.schedule.errors import InvalidSchedule
from trigger_operator.schedule.planner import (
    CATCH_UP_NONE_GRACE,
    MISSED_DETAIL_LIMIT,
    Plan,
    PlannedRun,
    latest_times,
    plan,
)
from trigger_operator.schedule.progress import Progress
from trigger_operator.schedule.times import compile_schedule

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, second, tzinfo=UTC)


def hourly(**fields: Any) -> Plan:
    """Plan an hourly UTC trigger whose cursor is 10:00, at `now` (default 14:30)."""
    now = fields.pop("now", at(14, 30))
    progress = fields.pop("progress", Progress(created=CREATED, cursor=at(10)))
    jitter = fields.pop("jitter", timedelta(0))
    return plan(make_spec(schedule="0 * * * *", **fields), progress, now=now, jitter=jitter)


# Hourly, cursor 10:00, now 14:30: 11:00, 12:00, 13:00 and 14:00 are due.
CATCH_UP_CASES = [
    (
        "Latest starts only the newest due time",
        {"catchUp": "Latest"},
        [at(14)],
        [at(11), at(12), at(13)],
    ),
    (
        "All starts every due time oldest first",
        {"catchUp": "All"},
        [at(11), at(12), at(13), at(14)],
        [],
    ),
    (
        "All starts the newest maxCatchUpRuns",
        {"catchUp": "All", "maxCatchUpRuns": 2},
        [at(13), at(14)],
        [at(11), at(12)],
    ),
    (
        "None starts nothing after downtime",
        {"catchUp": "None"},
        [],
        [at(11), at(12), at(13), at(14)],
    ),
    (
        "a deadline misses times older than it",
        {"startingDeadlineSeconds": 600},
        [],
        [at(11), at(12), at(13), at(14)],
    ),
    (
        "All with a deadline starts only the times within it",
        {"catchUp": "All", "startingDeadlineSeconds": 3600},
        [at(14)],
        [at(11), at(12), at(13)],
    ),
    (
        "a deadline is inclusive",
        {"catchUp": "All", "startingDeadlineSeconds": 5400},
        [at(13), at(14)],
        [at(11), at(12)],
    ),
]


@pytest.mark.parametrize(
    ("fields", "started", "missed"),
    [case[1:] for case in CATCH_UP_CASES],
    ids=[case[0] for case in CATCH_UP_CASES],
)
def test_after_downtime_catch_up_decides_what_starts_and_the_rest_is_missed(
    fields: dict[str, Any], started: list[datetime], missed: list[datetime]
) -> None:
    result = hourly(**fields)
    assert list(result.start) == started
    assert list(result.missed) == missed
    assert result.missed_count == len(missed)
    assert result.cursor == at(14)
    assert result.next_run == at(15)


def test_an_on_time_run_is_started_and_nothing_is_missed() -> None:
    result = hourly(progress=Progress(created=CREATED, cursor=at(13)), now=at(14, 0, 0))
    assert result == Plan(
        starts=(PlannedRun(at(14), RunKind.SCHEDULED),),
        cursor=at(14),
        next_run=at(15),
        next_due=at(15),
        upcoming=(at(15),),
    )


@pytest.mark.parametrize(
    ("now", "started"),
    [
        (at(14) + CATCH_UP_NONE_GRACE, [at(14)]),
        (at(14) + CATCH_UP_NONE_GRACE + timedelta(seconds=1), []),
    ],
)
def test_catch_up_none_still_starts_a_time_that_is_only_a_little_late(
    now: datetime, started: list[datetime]
) -> None:
    result = hourly(catchUp="None", progress=Progress(created=CREATED, cursor=at(13)), now=now)
    assert list(result.start) == started
    assert result.missed_count == 1 - len(started)


def test_catch_up_none_starts_nothing_when_several_times_are_due_at_once() -> None:
    # Two times due in one pass: the operator was not dispatching, even if the newest
    # is only seconds late.
    now = at(15) + timedelta(seconds=5)
    result = hourly(catchUp="None", progress=Progress(created=CREATED, cursor=at(13)), now=now)
    assert result.start == ()
    assert result.missed == (at(14), at(15))
    assert result.missed_count == 2
    assert result.cursor == at(15)


@pytest.mark.parametrize(
    ("now", "started"),
    [(at(14, 0, 0) + timedelta(milliseconds=900), [at(14)]), (at(14, 0, 1), [])],
)
def test_a_zero_deadline_admits_a_start_within_the_same_second(
    now: datetime, started: list[datetime]
) -> None:
    result = hourly(
        startingDeadlineSeconds=0, progress=Progress(created=CREATED, cursor=at(13)), now=now
    )
    assert list(result.start) == started


def test_nothing_due_changes_nothing_but_says_what_is_next() -> None:
    result = hourly(progress=Progress(created=CREATED, cursor=at(14)), now=at(14, 30))
    assert result == Plan(cursor=at(14), next_run=at(15), next_due=at(15), upcoming=(at(15),))


def test_times_at_or_before_an_edit_never_fire_and_are_not_counted() -> None:
    result = hourly(progress=Progress(created=CREATED, cursor=at(10), epoch=at(12)))
    assert list(result.start) == [at(14)]
    assert list(result.missed) == [at(13)]
    assert result.missed_count == 1


def test_an_edit_after_the_cursor_and_just_now_fires_nothing_in_the_past() -> None:
    result = hourly(progress=Progress(created=CREATED, cursor=at(10), epoch=at(14, 30)))
    assert result.start == ()
    assert result.missed_count == 0
    assert result.next_run == at(15)


def test_a_new_cron_trigger_starts_from_its_creation() -> None:
    result = hourly(progress=Progress(created=at(12, 10)))
    assert list(result.start) == [at(14)]
    assert list(result.missed) == [at(13)]


def test_jitter_delays_the_start_but_not_the_scheduled_time() -> None:
    progress = Progress(created=CREATED, cursor=at(13))
    early = hourly(progress=progress, now=at(14, 1), jitter=timedelta(minutes=2))
    assert early.start == ()
    assert (early.next_run, early.next_due) == (at(14), at(14, 2))
    due = hourly(progress=progress, now=at(14, 2), jitter=timedelta(minutes=2))
    assert list(due.start) == [at(14)]
    assert (due.next_run, due.next_due) == (at(15), at(15, 2))


def test_the_deadline_counts_from_the_jittered_start() -> None:
    result = hourly(
        startingDeadlineSeconds=60,
        progress=Progress(created=CREATED, cursor=at(13)),
        now=at(14, 10, 30),
        jitter=timedelta(minutes=10),
    )
    assert list(result.start) == [at(14)]


def test_a_suspended_trigger_plans_nothing_and_keeps_its_cursor() -> None:
    result = hourly(suspend=True)
    assert result == Plan(cursor=at(10))


def test_upcoming_lists_the_next_few_times() -> None:
    result = plan(
        make_spec(schedule="0 * * * *"),
        Progress(created=CREATED, cursor=at(14)),
        now=at(14, 30),
        upcoming_count=3,
    )
    assert result.upcoming == (at(15), at(16), at(17))


def test_an_invalid_schedule_raises_its_error() -> None:
    with pytest.raises(InvalidSchedule, match="minute field '99'"):
        plan(make_spec(schedule="99 * * * *"), Progress(created=CREATED), now=at(12))


def test_a_year_down_on_a_per_second_schedule_is_counted_not_enumerated() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    result = plan(
        make_spec(schedule="* * * * * *", timeZone="Europe/Berlin"),
        Progress(created=start, cursor=start),
        now=end,
    )
    assert list(result.start) == [end]
    assert result.missed_count == 31_536_000 - 1
    assert len(result.missed) == MISSED_DETAIL_LIMIT
    assert result.missed[0] == end - timedelta(seconds=MISSED_DETAIL_LIMIT)
    assert result.last_missed == end - timedelta(seconds=1)
    assert result.cursor == end


def test_catch_up_all_after_a_year_starts_the_newest_runs_oldest_first() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    result = plan(
        make_spec(schedule="*/10 * * * * *", catchUp="All", maxCatchUpRuns=3),
        Progress(created=start, cursor=start),
        now=end + timedelta(seconds=5),
    )
    assert list(result.start) == [end - timedelta(seconds=20), end - timedelta(seconds=10), end]
    assert result.missed_count == 365 * 8640 - 3


@pytest.mark.parametrize("n", [1, 2, 5, 50])
def test_latest_times_are_the_newest_n_oldest_first(n: int) -> None:
    schedule = compile_schedule(schedule="*/7 * * * *", run_at=None, time_zone="America/New_York")
    after = datetime(2026, 3, 1, tzinfo=UTC)
    until = datetime(2026, 3, 10, 12, 34, 56, 789, tzinfo=UTC)
    everything = _all(schedule.fire_times(after), until)
    assert latest_times(schedule, after, until, n) == everything[-n:]


def _all(times: Iterator[datetime], until: datetime) -> list[datetime]:
    listed: list[datetime] = []
    for instant in times:
        if instant > until:
            return listed
        listed.append(instant)
    return listed


RUN_AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def once(now: datetime, progress: Progress | None = None, **fields: Any) -> Plan:
    spec = make_spec(runAt="2026-12-01T10:00:00+01:00", **fields)
    return plan(spec, progress or Progress(created=RUN_AT - timedelta(days=1)), now=now)


def test_a_future_run_at_waits_for_its_time() -> None:
    result = once(RUN_AT - timedelta(minutes=5))
    assert result == Plan(next_run=RUN_AT, next_due=RUN_AT, upcoming=(RUN_AT,))


def test_a_due_run_at_starts_and_completes_the_trigger() -> None:
    result = once(RUN_AT)
    assert result == Plan(
        starts=(PlannedRun(RUN_AT, RunKind.SCHEDULED),), cursor=RUN_AT, completed=True
    )


def test_a_run_at_already_past_when_first_seen_fires_at_once() -> None:
    result = once(RUN_AT + timedelta(days=3), Progress(created=RUN_AT + timedelta(days=3)))
    assert result.start == (RUN_AT,)
    assert result.completed


def test_a_run_at_past_its_deadline_is_missed_and_completes() -> None:
    result = once(RUN_AT + timedelta(minutes=11), startingDeadlineSeconds=600)
    assert result == Plan(missed=(RUN_AT,), missed_count=1, cursor=RUN_AT, completed=True)


def test_a_run_at_within_its_deadline_starts() -> None:
    result = once(RUN_AT + timedelta(minutes=10), startingDeadlineSeconds=600)
    assert result.start == (RUN_AT,)


def test_a_one_time_trigger_ignores_catch_up_none() -> None:
    result = once(RUN_AT + timedelta(hours=2), catchUp="None")
    assert result.start == (RUN_AT,)


def test_a_run_at_edited_into_the_past_is_missed_not_fired() -> None:
    progress = Progress(created=RUN_AT - timedelta(days=1), epoch=RUN_AT + timedelta(hours=1))
    result = once(RUN_AT + timedelta(hours=1), progress)
    assert result == Plan(missed=(RUN_AT,), missed_count=1, cursor=RUN_AT, completed=True)


def test_a_completed_one_time_trigger_plans_nothing() -> None:
    progress = Progress(created=RUN_AT - timedelta(days=1), cursor=RUN_AT, completed=True)
    assert once(RUN_AT + timedelta(days=1), progress) == Plan(cursor=RUN_AT, completed=True)


def test_a_run_at_the_cursor_already_passed_is_not_run_again() -> None:
    progress = Progress(created=RUN_AT - timedelta(days=1), cursor=RUN_AT)
    assert once(RUN_AT + timedelta(days=1), progress) == Plan(cursor=RUN_AT, completed=True)


def test_a_one_time_trigger_waits_for_its_jitter() -> None:
    spec = make_spec(runAt="2026-12-01T09:00:00Z")
    progress = Progress(created=RUN_AT - timedelta(days=1))
    waiting = plan(spec, progress, now=RUN_AT + timedelta(seconds=5), jitter=timedelta(seconds=9))
    assert (waiting.start, waiting.next_run, waiting.next_due) == (
        (),
        RUN_AT,
        RUN_AT + timedelta(seconds=9),
    )
    due = plan(spec, progress, now=RUN_AT + timedelta(seconds=9), jitter=timedelta(seconds=9))
    assert due.start == (RUN_AT,)
