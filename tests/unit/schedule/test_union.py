"""spec.schedules: the union of several expressions, each time once, DST rules per expression."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import takewhile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.schedule.specs import make_spec
from tests.unit.schedule.test_times_properties import ZONES, oracle, windows
from trigger_operator.jobs.builder import TriggerRef, scheduled_job_name
from trigger_operator.models.spec import CatchUp, DaylightSaving, RepeatedTimes, SkippedTimes
from trigger_operator.schedule.errors import InvalidSchedule
from trigger_operator.schedule.planner import plan
from trigger_operator.schedule.progress import Progress, schedule_fingerprint
from trigger_operator.schedule.times import (
    CronSchedule,
    UnionSchedule,
    compile_schedule,
    upcoming,
)


def union(*texts: str, zone: str = "UTC", **rules: object) -> UnionSchedule:
    compiled = compile_schedule(
        schedule=None,
        schedules=list(texts),
        run_at=None,
        time_zone=zone,
        daylight_saving=DaylightSaving.model_validate(rules),
    )
    assert isinstance(compiled, UnionSchedule)
    return compiled


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_the_union_lists_each_time_once_in_order() -> None:
    schedule = union("0 9 * * *", "0 9 * * MON", "30 9 * * MON-FRI")
    times = upcoming(schedule, utc(2026, 1, 4), 5)  # a Sunday
    assert times == [
        utc(2026, 1, 4, 9),
        utc(2026, 1, 5, 9),  # Monday: two expressions, one time
        utc(2026, 1, 5, 9, 30),
        utc(2026, 1, 6, 9),
        utc(2026, 1, 6, 9, 30),
    ]
    assert schedule.count(utc(2026, 1, 4), utc(2026, 1, 6, 9, 30)) == 5


def test_weekdays_and_weekends_at_different_times() -> None:
    schedule = union("0 8 * * MON-FRI", "0 11 * * SAT,SUN", zone="Europe/Berlin")
    times = upcoming(schedule, utc(2026, 1, 9, 12), 3)  # Friday noon
    assert times == [utc(2026, 1, 10, 10), utc(2026, 1, 11, 10), utc(2026, 1, 12, 7)]


def test_a_gap_time_and_a_regular_time_at_the_same_instant_run_once() -> None:
    # 2026-03-08 in New York: 02:30 does not exist and runs at 03:00 EDT, which is also
    # the regular time of the second expression.
    schedule = union("30 2 * * *", "0 3 * * *", zone="America/New_York")
    times = list(takewhile(lambda t: t < utc(2026, 3, 9), schedule.fire_times(utc(2026, 3, 8))))
    assert times == [utc(2026, 3, 8, 7)]
    assert schedule.count(utc(2026, 3, 8), utc(2026, 3, 9)) == 1


def test_daylight_saving_auto_is_decided_per_expression() -> None:
    # 2026-11-01 in New York: 01:00-02:00 happens twice. The hourly expression is an
    # interval schedule and fires in both; 01:30 fires once.
    schedule = union("0 * * * *", "30 1 * * *", zone="America/New_York")
    times = list(
        takewhile(lambda t: t < utc(2026, 11, 1, 7), schedule.fire_times(utc(2026, 11, 1, 4)))
    )
    assert times == [
        utc(2026, 11, 1, 5),  # 01:00 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, once
        utc(2026, 11, 1, 6),  # 01:00 EST, again; 01:30 EST does not fire
    ]


def test_a_time_two_expressions_share_has_one_job_name() -> None:
    ref = TriggerRef(namespace="ns", name="both", uid="uid-1")
    schedule = union("0 9 * * *", "0 9 * * MON")
    names = [scheduled_job_name(ref, t) for t in upcoming(schedule, utc(2026, 1, 4), 4)]
    assert len(names) == len(set(names)) == 4


def test_a_bad_expression_is_named_by_its_index() -> None:
    with pytest.raises(InvalidSchedule) as raised:
        union("0 9 * * *", "0 25 * * *")
    assert str(raised.value) == "spec.schedules[1]: hour field '25' out of range 0-23"


def test_one_expression_in_schedules_is_a_plain_cron_schedule() -> None:
    compiled = compile_schedule(schedule=None, schedules=["@daily"], run_at=None)
    assert isinstance(compiled, CronSchedule)


def test_schedules_count_in_the_fingerprint_only_when_set() -> None:
    one = make_spec(schedule="0 9 * * *")
    assert schedule_fingerprint(one) == schedule_fingerprint(make_spec(schedule="0 9 * * *"))
    several = make_spec(schedules=["0 9 * * *", "0 17 * * *"])
    edited = make_spec(schedules=["0 9 * * *", "0 18 * * *"])
    assert schedule_fingerprint(several) != schedule_fingerprint(edited)


def test_catch_up_all_starts_each_distinct_time_once() -> None:
    spec = make_spec(schedules=["0 * * * *", "0 */2 * * *"], catchUp=CatchUp.ALL.value)
    progress = Progress(created=utc(2026, 1, 1), cursor=utc(2026, 1, 1))
    outcome = plan(spec, progress, now=utc(2026, 1, 1, 5) + timedelta(seconds=30))
    assert outcome.start == tuple(utc(2026, 1, 1, h) for h in range(1, 6))
    assert outcome.missed_count == 0


def test_a_year_down_on_a_union_of_per_second_schedules_is_counted_not_listed() -> None:
    schedule = union("* * * * * *", "*/2 * * * * *", "0 0 * * *")
    began = time.perf_counter()
    total = schedule.count(utc(2025, 1, 1), utc(2026, 1, 1))
    assert total == 365 * 86_400
    assert time.perf_counter() - began < 10


texts = st.sampled_from(
    ["0 * * * *", "30 1 * * *", "*/20 * * * *", "0 2 * * *", "15 */3 * * SUN", "0 0 L * *"]
)


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    chosen=st.lists(texts, min_size=2, max_size=4, unique=True),
    zone_name=st.sampled_from(ZONES),
    skipped=st.sampled_from(list(SkippedTimes)),
    repeated=st.sampled_from(list(RepeatedTimes)),
    hours=st.sampled_from([12, 48, 24 * 9]),
)
def test_the_union_is_the_oracle_union_of_its_parts_and_counting_matches_listing(
    data: st.DataObject,
    chosen: list[str],
    zone_name: str,
    skipped: SkippedTimes,
    repeated: RepeatedTimes,
    hours: int,
) -> None:
    schedule = union(*chosen, zone=zone_name, skippedTimes=skipped, repeatedTimes=repeated)
    start, end = data.draw(windows(zone_name, hours))
    expected = sorted(
        {
            t
            for part in schedule.parts
            for t in oracle(
                part.expression, part.zone, skipped, part.fires_twice_in_folds, start, end
            )
        }
    )
    listed = list(takewhile(lambda t: t <= end, schedule.fire_times(start)))
    assert listed == expected
    assert schedule.count(start, end) == len(expected)
