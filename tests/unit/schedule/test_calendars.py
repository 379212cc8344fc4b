"""Calendars: dates in their own zone, yearly dates, ranges, windows, and the planner's use."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.schedule.specs import make_spec
from trigger_operator.models.calendar import Exclusions
from trigger_operator.models.spec import CatchUp
from trigger_operator.schedule.calendars import (
    EXCLUDED_SEARCH_LIMIT,
    NO_EXCLUSIONS,
    ExclusionSet,
    InvalidCalendar,
    allowed_times,
    compile_exclusions,
)
from trigger_operator.schedule.planner import _following, plan
from trigger_operator.schedule.progress import Progress, schedule_fingerprint
from trigger_operator.schedule.times import RecurringSchedule, compile_schedule, upcoming


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def calendar(zone: str = "UTC", name: str = "holidays", **rules: Any) -> ExclusionSet:
    return compile_exclusions(
        [(name, zone, Exclusions.model_validate(rules))], None, time_zone=zone
    )


def test_a_date_is_excluded_midnight_to_midnight_on_the_calendars_own_clock() -> None:
    berlin = calendar("Europe/Berlin", dates=["2026-12-25"])
    assert berlin.excluded_by(utc(2026, 12, 24, 22, 59)) is None  # 23:59 on the 24th
    assert berlin.excluded_by(utc(2026, 12, 24, 23)) == "ScheduleCalendar holidays"  # 00:00
    assert berlin.excluded_by(utc(2026, 12, 25, 22, 59)) == "ScheduleCalendar holidays"
    assert berlin.excluded_by(utc(2026, 12, 25, 23)) is None  # 00:00 on the 26th


@pytest.mark.parametrize(
    ("day", "first", "last"),
    [
        # Spring forward in New York: a 23-hour day, 05:00Z to 04:00Z.
        ("2026-03-08", utc(2026, 3, 8, 5), utc(2026, 3, 9, 3, 59)),
        # Fall back: a 25-hour day, 04:00Z to 05:00Z the next day.
        ("2026-11-01", utc(2026, 11, 1, 4), utc(2026, 11, 2, 4, 59)),
    ],
)
def test_a_date_on_a_day_the_clocks_change_excludes_exactly_that_day(
    day: str, first: datetime, last: datetime
) -> None:
    rules = calendar("America/New_York", dates=[day])
    assert rules.excluded_by(first - timedelta(minutes=1)) is None
    assert rules.excluded_by(first) is not None
    assert rules.excluded_by(last) is not None
    assert rules.excluded_by(last + timedelta(minutes=1)) is None


def test_a_daily_schedule_in_a_dst_zone_skips_only_the_excluded_local_date() -> None:
    schedule = compile_schedule(schedule="30 2 * * *", run_at=None, time_zone="America/New_York")
    rules = calendar("America/New_York", dates=["2026-03-08"])
    times = list(islice(allowed_times(schedule, rules, utc(2026, 3, 7)), 3))
    # 03-07 at 02:30 EST; 03-08 (its 02:30 ran after the gap, at 03:00 EDT) is excluded.
    assert times == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)]


def test_yearly_dates_repeat_and_29_february_only_in_leap_years() -> None:
    rules = calendar(yearly=["12-25", "02-29"])
    assert rules.excluded_by(utc(2031, 12, 25, 12)) is not None
    assert rules.excluded_by(utc(2028, 2, 29, 12)) is not None
    for day in (utc(2027, 2, 28, 12), utc(2027, 3, 1, 12), utc(2028, 2, 28, 12)):
        assert rules.excluded_by(day) is None
    schedule = compile_schedule(schedule="0 12 28-31 2,3 *", run_at=None)
    times = upcoming(schedule, utc(2027, 2, 27), 3)
    assert times == [utc(2027, 2, 28, 12), utc(2027, 3, 28, 12), utc(2027, 3, 29, 12)]
    assert [t.day for t in islice(allowed_times(schedule, rules, utc(2028, 2, 27)), 2)] == [28, 28]


def test_a_range_excludes_both_its_ends() -> None:
    rules = calendar(ranges=[{"start": "2026-08-03", "end": "2026-08-14"}])
    assert rules.excluded_by(utc(2026, 8, 2, 23, 59)) is None
    assert rules.excluded_by(utc(2026, 8, 3)) is not None
    assert rules.excluded_by(utc(2026, 8, 14, 23, 59)) is not None
    assert rules.excluded_by(utc(2026, 8, 15)) is None


def test_a_window_crossing_midnight_excludes_until_it_closes() -> None:
    rules = calendar("Europe/Berlin", windows=[{"schedule": "0 23 * * *", "duration": "2h"}])
    # Berlin is UTC+1 in January: 23:00 local is 22:00Z, the window closes 00:00Z.
    assert rules.excluded_by(utc(2026, 1, 10, 21, 59)) is None
    assert rules.excluded_by(utc(2026, 1, 10, 22)) is not None
    assert rules.excluded_by(utc(2026, 1, 10, 23, 59)) is not None
    assert rules.excluded_by(utc(2026, 1, 11, 0)) is None  # half-open: 01:00 runs


def test_a_window_across_a_change_of_the_clocks_lasts_its_elapsed_duration() -> None:
    rules = calendar("Europe/Berlin", windows=[{"schedule": "30 1 * * *", "duration": "1h"}])
    # 2026-03-29: 01:30 CET is 00:30Z; an hour later it is 03:30 CEST, 01:30Z.
    assert rules.excluded_by(utc(2026, 3, 29, 1, 29)) is not None
    assert rules.excluded_by(utc(2026, 3, 29, 1, 30)) is None


def test_the_first_calendar_that_excludes_is_named_and_inline_rules_come_last() -> None:
    rules = compile_exclusions(
        [("a", "UTC", Exclusions(dates=["2026-01-01"])), ("b", "UTC", Exclusions())],
        Exclusions(dates=["2026-01-01", "2026-01-02"]),
        time_zone="UTC",
    )
    assert rules.excluded_by(utc(2026, 1, 1, 9)) == "ScheduleCalendar a"
    assert rules.excluded_by(utc(2026, 1, 2, 9)) == "spec.exclude"


@pytest.mark.parametrize(
    ("rules", "zone", "message"),
    [
        ({"dates": ["2026-02-30"]}, "UTC", "spec.exclude.dates[0]: '2026-02-30' is not a date"),
        ({"yearly": ["02-30"]}, "UTC", "spec.exclude.yearly[0]: '02-30' is not a date of any"),
        (
            {"ranges": [{"start": "2026-02-02", "end": "2026-02-01"}]},
            "UTC",
            "spec.exclude.ranges[0]: end 2026-02-01 is before start 2026-02-02",
        ),
        (
            {"windows": [{"schedule": "0 25 * * *", "duration": "1h"}]},
            "UTC",
            "spec.exclude.windows[0].schedule: hour field '25' out of range 0-23",
        ),
        (
            {"windows": [{"schedule": "H 1 * * *", "duration": "1h"}]},
            "UTC",
            "spec.exclude.windows[0].schedule: H is for triggers",
        ),
        (
            {"windows": [{"schedule": "0 1 * * *", "duration": "169h"}]},
            "UTC",
            "spec.exclude.windows[0].duration: '169h' is not a duration from 1s to 168h",
        ),
        ({}, "Mars/Olympus", "spec.timeZone"),
    ],
)
def test_what_a_calendar_cannot_say_names_the_calendar_and_the_field(
    rules: dict[str, Any], zone: str, message: str
) -> None:
    with pytest.raises(InvalidCalendar) as raised:
        calendar(zone, name="team", **rules)
    assert str(raised.value).startswith("ScheduleCalendar team: ")
    assert message in str(raised.value)
    assert raised.value.reason == "InvalidCalendar"


def test_a_calendar_that_excludes_everything_ends_the_search() -> None:
    schedule = compile_schedule(schedule="* * * * *", run_at=None)
    rules = calendar(windows=[{"schedule": "* * * * *", "duration": "1m"}])
    assert list(allowed_times(schedule, rules, utc(2026, 1, 1))) == []
    spec = make_spec(schedule="* * * * *", calendars=["holidays"])
    progress = Progress(created=utc(2026, 1, 1), cursor=utc(2026, 1, 1))
    outcome = plan(spec, progress, now=utc(2026, 1, 1, 0, 0), exclusions=rules)
    assert outcome.next_run is None and outcome.upcoming == ()
    assert outcome.next_due == utc(2026, 1, 1, 0, 1), "the next time is still handled"
    assert EXCLUDED_SEARCH_LIMIT >= 1000


def test_an_excluded_due_time_is_excluded_not_missed_and_the_cursor_moves_past_it() -> None:
    spec = make_spec(schedule="0 * * * *", calendars=["holidays"])
    rules = calendar(windows=[{"schedule": "0 9 * * *", "duration": "1h"}])
    progress = Progress(created=utc(2026, 1, 1), cursor=utc(2026, 1, 5, 8))
    outcome = plan(spec, progress, now=utc(2026, 1, 5, 9, 0, 1), exclusions=rules)
    assert outcome.start == ()
    assert outcome.excluded == ((utc(2026, 1, 5, 9), "ScheduleCalendar holidays"),)
    assert outcome.missed_count == 0 and outcome.cursor == utc(2026, 1, 5, 9)
    assert outcome.next_run == utc(2026, 1, 5, 10)
    again = plan(
        spec,
        Progress(created=utc(2026, 1, 1), cursor=outcome.cursor),
        now=utc(2026, 1, 5, 9, 30),
        exclusions=rules,
    )
    assert again.excluded == (), "an excluded time is handled once"


def test_catch_up_latest_starts_the_newest_time_that_is_not_excluded() -> None:
    spec = make_spec(schedule="0 * * * *", calendars=["holidays"], catchUp=CatchUp.LATEST.value)
    rules = calendar(windows=[{"schedule": "0 9 * * *", "duration": "1h"}])
    progress = Progress(created=utc(2026, 1, 1), cursor=utc(2026, 1, 5, 6))
    outcome = plan(spec, progress, now=utc(2026, 1, 5, 9, 0, 5), exclusions=rules)
    assert outcome.start == (utc(2026, 1, 5, 8),)
    assert outcome.missed == (utc(2026, 1, 5, 7),)
    assert [t for t, _ in outcome.excluded] == [utc(2026, 1, 5, 9)]


def test_catch_up_none_still_starts_an_on_time_run_beside_an_excluded_one() -> None:
    spec = make_spec(schedules=["0 9 * * *", "30 9 * * *"], catchUp=CatchUp.NONE.value)
    rules = calendar(windows=[{"schedule": "0 9 * * *", "duration": "1m"}])
    progress = Progress(created=utc(2026, 1, 1), cursor=utc(2026, 1, 5, 8))
    outcome = plan(spec, progress, now=utc(2026, 1, 5, 9, 30, 2), exclusions=rules)
    assert outcome.start == (utc(2026, 1, 5, 9, 30),)


def test_a_calendar_edit_changes_the_fingerprint_of_its_triggers_only() -> None:
    spec = make_spec(calendars=["holidays"])
    before = calendar(dates=["2026-12-25"]).digest
    after = calendar(dates=["2026-12-25", "2026-12-26"]).digest
    assert schedule_fingerprint(spec, exclusions=before) != schedule_fingerprint(
        spec, exclusions=after
    )
    plain = make_spec()
    assert schedule_fingerprint(plain, exclusions=before) == schedule_fingerprint(plain)


zones = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"])
dates = st.dates(min_value=date(2026, 3, 20), max_value=date(2026, 4, 5))


@settings(max_examples=15, deadline=None)
@given(
    zone=zones,
    excluded_dates=st.lists(dates, max_size=4),
    window=st.tuples(
        st.sampled_from(["0 1 * * *", "30 23 * * *", "0 */6 * * *"]),
        st.sampled_from(["30m", "2h", "5h"]),
    ),
    text=st.sampled_from(["0 * * * *", "30 2 * * *", "*/45 * * * *"]),
)
def test_a_time_is_excluded_exactly_when_it_gets_no_job_and_each_time_is_handled_once(
    zone: str, excluded_dates: list[Any], window: tuple[str, str], text: str
) -> None:
    rules = compile_exclusions(
        [
            (
                "cal",
                zone,
                Exclusions.model_validate(
                    {
                        "dates": [d.isoformat() for d in excluded_dates],
                        "windows": [{"schedule": window[0], "duration": window[1]}],
                    }
                ),
            )
        ],
        None,
        time_zone=zone,
    )
    spec = make_spec(schedule=text, timeZone=zone, calendars=["cal"])
    schedule = compile_schedule(schedule=text, run_at=None, time_zone=zone)
    start, end = utc(2026, 3, 24), utc(2026, 4, 2)
    every = list(takewhile_until(schedule.fire_times(start), end))
    started: list[datetime] = []
    excluded: list[datetime] = []
    cursor = start
    # A leader that dispatches each due time as it comes.
    for instant in every:
        outcome = plan(
            spec,
            Progress(created=start, cursor=cursor),
            now=instant + timedelta(seconds=1),
            exclusions=rules,
        )
        started += outcome.start
        excluded += [t for t, _ in outcome.excluded]
        assert outcome.missed_count == 0
        assert outcome.next_run is None or rules.excluded_by(outcome.next_run) is None
        following = [t for t in every if t > instant and rules.excluded_by(t) is None]
        if following:
            assert outcome.next_run == following[0], "no allowed time is stepped over"
        cursor = outcome.cursor or cursor
    assert sorted(started + excluded) == every
    assert set(excluded) == {t for t in every if rules.excluded_by(t) is not None}
    assert not set(started) & set(excluded)


def takewhile_until(times: Any, end: datetime) -> Any:
    for instant in times:
        if instant > end:
            return
        yield instant


@settings(max_examples=150, deadline=None)
@given(
    expression=st.sampled_from(["0 0 1 1 *", "*/7 * * * *", "0 9 * * 1-5", "*/20 * * * * *"]),
    excluded=st.booleans(),
    offsets=st.lists(st.integers(min_value=-3 * 86_400, max_value=3 * 86_400), max_size=12),
    count=st.integers(min_value=1, max_value=4),
)
def test_the_remembered_next_times_are_those_a_fresh_listing_gives(
    expression: str, excluded: bool, offsets: list[int], count: int
) -> None:
    # Listings from instants in any order, around excluded days and around the times
    # themselves (a second before, at, after): each is what allowed_times lists afresh.
    schedule = compile_schedule(schedule=expression, run_at=None, time_zone="Europe/Berlin")
    assert isinstance(schedule, RecurringSchedule)
    exclusions = (
        calendar("Europe/Berlin", dates=["2026-12-24", "2026-12-25"], yearly=["01-01"])
        if excluded
        else NO_EXCLUSIONS
    )
    base = utc(2026, 12, 24, 8, 59, 59)
    afters = [base + timedelta(seconds=offset) for offset in offsets]
    for first in list(afters):
        fresh = list(islice(allowed_times(schedule, exclusions, first), count))
        afters += [t + timedelta(seconds=d) for t in fresh for d in (-1, 0, 1)]
    for after in afters:
        assert _following(schedule, exclusions, after, count) == list(
            islice(allowed_times(schedule, exclusions, after), count)
        ), after


def test_remembered_times_are_of_the_exclusions_asked_about() -> None:
    schedule = compile_schedule(schedule="0 9 * * *", run_at=None, time_zone="UTC")
    assert isinstance(schedule, RecurringSchedule)
    after = utc(2026, 12, 23, 10)
    plain = _following(schedule, NO_EXCLUSIONS, after, 2)
    christmas = calendar(dates=["2026-12-24"])

    assert _following(schedule, christmas, after, 2) == [utc(2026, 12, 25, 9), utc(2026, 12, 26, 9)]
    assert plain == [utc(2026, 12, 24, 9), utc(2026, 12, 25, 9)]
    assert _following(schedule, NO_EXCLUSIONS, after, 2) == plain
    assert _following(schedule, NO_EXCLUSIONS, after, 3)[2] == utc(2026, 12, 26, 9)
