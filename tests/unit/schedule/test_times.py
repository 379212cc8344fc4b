"""Fire times: exact UTC instants, across daylight-saving changes, with each rule."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.unit.schedule.specs import make_spec
from trigger_operator.models.spec import DaylightSaving, RepeatedTimes, SkippedTimes
from trigger_operator.schedule.errors import InvalidRunAt, InvalidTimeZone, ScheduleError
from trigger_operator.schedule.times import (
    CronSchedule,
    OneTimeSchedule,
    compile_schedule,
    next_after,
    schedule_of,
    upcoming,
)

RUN_AFTER_GAP, SKIP = SkippedTimes.RUN_AFTER_GAP, SkippedTimes.SKIP
AUTO, ONCE, TWICE = RepeatedTimes.AUTO, RepeatedTimes.ONCE, RepeatedTimes.TWICE


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cron(
    expression: str,
    zone: str = "UTC",
    skipped: SkippedTimes = RUN_AFTER_GAP,
    repeated: RepeatedTimes = AUTO,
) -> CronSchedule:
    schedule = compile_schedule(
        schedule=expression,
        run_at=None,
        time_zone=zone,
        daylight_saving=DaylightSaving(skipped_times=skipped, repeated_times=repeated),
    )
    assert isinstance(schedule, CronSchedule)
    return schedule


CASES = [
    # America/New_York springs forward on 2026-03-08 at 07:00Z: 02:00 EST becomes 03:00 EDT.
    (
        "ny: a daily time in the gap runs at the end of the gap",
        "30 2 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        AUTO,
        "2026-03-07T12:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
    ),
    (
        "ny: a daily time in the gap is skipped with Skip",
        "30 2 * * *",
        "America/New_York",
        SKIP,
        AUTO,
        "2026-03-07T12:00:00Z",
        ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z", "2026-03-11T06:30:00Z"],
    ),
    (
        "ny: several skipped times run once together",
        "15,45 2 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        AUTO,
        "2026-03-08T00:00:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:15:00Z", "2026-03-09T06:45:00Z"],
    ),
    (
        "ny: several skipped times are all skipped with Skip",
        "15,45 2 * * *",
        "America/New_York",
        SKIP,
        AUTO,
        "2026-03-08T00:00:00Z",
        ["2026-03-09T06:15:00Z", "2026-03-09T06:45:00Z", "2026-03-10T06:15:00Z"],
    ),
    (
        "ny: skipped times and a regular time at the end of the gap are one run",
        "*/30 * * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        AUTO,
        "2026-03-08T06:00:00Z",
        ["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"],
    ),
    (
        "ny: an interval schedule with Skip keeps its regular time after the gap",
        "*/30 * * * *",
        "America/New_York",
        SKIP,
        AUTO,
        "2026-03-08T06:00:00Z",
        ["2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"],
    ),
    # America/New_York falls back on 2026-11-01 at 06:00Z: 02:00 EDT becomes 01:00 EST.
    (
        "ny: a daily time in the fold fires once with Auto",
        "30 1 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        AUTO,
        "2026-10-31T12:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
    ),
    (
        "ny: a daily time in the fold fires once with Once",
        "30 1 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        ONCE,
        "2026-10-31T12:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
    ),
    (
        "ny: a daily time in the fold fires twice with Twice",
        "30 1 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        TWICE,
        "2026-10-31T12:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"],
    ),
    (
        "ny: an hourly schedule fires in both repeated hours with Auto",
        "0 * * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        AUTO,
        "2026-11-01T03:30:00Z",
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z",
        ],
    ),
    (
        "ny: an hourly schedule fires in the first repeated hour only with Once",
        "0 * * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        ONCE,
        "2026-11-01T03:30:00Z",
        [
            "2026-11-01T04:00:00Z",
            "2026-11-01T05:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T08:00:00Z",
        ],
    ),
    (
        "ny: a */2 hour field counts as an interval for Auto",
        "30 */1 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        AUTO,
        "2026-11-01T05:00:00Z",
        ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"],
    ),
    (
        "ny: starting inside the first occurrence still fires the second with Twice",
        "*/30 * * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        TWICE,
        "2026-11-01T05:45:00Z",
        ["2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"],
    ),
    (
        "ny: starting inside the fold never fires a second occurrence with Once",
        "30 1 * * *",
        "America/New_York",
        RUN_AFTER_GAP,
        ONCE,
        "2026-11-01T05:45:00Z",
        ["2026-11-02T06:30:00Z"],
    ),
    # Europe/London: 01:00Z on 2026-03-29 (GMT to BST) and on 2026-10-25 (BST to GMT).
    (
        "london: a time in the spring gap runs at the end of the gap",
        "30 1 * * *",
        "Europe/London",
        RUN_AFTER_GAP,
        AUTO,
        "2026-03-28T12:00:00Z",
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),
    (
        "london: a time in the autumn fold fires twice with Twice",
        "30 1 * * *",
        "Europe/London",
        RUN_AFTER_GAP,
        TWICE,
        "2026-10-24T12:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"],
    ),
    (
        "london: a time in the autumn fold fires once with Once",
        "30 1 * * *",
        "Europe/London",
        RUN_AFTER_GAP,
        ONCE,
        "2026-10-24T12:00:00Z",
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
    ),
    # Australia/Lord_Howe shifts by 30 minutes: 02:00 becomes 01:30 at 2026-04-04T15:00Z,
    # 02:00 becomes 02:30 at 2026-10-03T15:30Z.
    (
        "lord howe: quarter hours fire in both half-hour folds with Auto",
        "*/15 * * * *",
        "Australia/Lord_Howe",
        RUN_AFTER_GAP,
        AUTO,
        "2026-04-04T14:20:00Z",
        [
            "2026-04-04T14:30:00Z",
            "2026-04-04T14:45:00Z",
            "2026-04-04T15:00:00Z",
            "2026-04-04T15:15:00Z",
            "2026-04-04T15:30:00Z",
        ],
    ),
    (
        "lord howe: a daily time in the fold fires once with Once",
        "45 1 * * *",
        "Australia/Lord_Howe",
        RUN_AFTER_GAP,
        ONCE,
        "2026-04-04T00:00:00Z",
        ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"],
    ),
    (
        "lord howe: a daily time in the fold fires twice with Twice",
        "45 1 * * *",
        "Australia/Lord_Howe",
        RUN_AFTER_GAP,
        TWICE,
        "2026-04-04T00:00:00Z",
        ["2026-04-04T14:45:00Z", "2026-04-04T15:15:00Z", "2026-04-05T15:15:00Z"],
    ),
    (
        "lord howe: a time in the half-hour gap runs at its end",
        "15 2 * * *",
        "Australia/Lord_Howe",
        RUN_AFTER_GAP,
        AUTO,
        "2026-10-03T00:00:00Z",
        ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"],
    ),
    (
        "lord howe: a time in the half-hour gap is skipped with Skip",
        "15 2 * * *",
        "Australia/Lord_Howe",
        SKIP,
        AUTO,
        "2026-10-03T00:00:00Z",
        ["2026-10-04T15:15:00Z", "2026-10-05T15:15:00Z"],
    ),
    # Pacific/Apia skipped 2011-12-30 entirely: 2011-12-30T10:00Z is 2011-12-31 00:00 +14.
    (
        "apia: noon of the skipped day runs at the end of the gap",
        "0 12 * * *",
        "Pacific/Apia",
        RUN_AFTER_GAP,
        AUTO,
        "2011-12-29T00:00:00Z",
        ["2011-12-29T22:00:00Z", "2011-12-30T10:00:00Z", "2011-12-30T22:00:00Z"],
    ),
    (
        "apia: noon of the skipped day is skipped with Skip",
        "0 12 * * *",
        "Pacific/Apia",
        SKIP,
        AUTO,
        "2011-12-29T00:00:00Z",
        ["2011-12-29T22:00:00Z", "2011-12-30T22:00:00Z", "2011-12-31T22:00:00Z"],
    ),
    (
        "apia: midnight of the skipped day and of the next are one run",
        "0 0 * * *",
        "Pacific/Apia",
        RUN_AFTER_GAP,
        AUTO,
        "2011-12-29T00:00:00Z",
        ["2011-12-29T10:00:00Z", "2011-12-30T10:00:00Z", "2011-12-31T10:00:00Z"],
    ),
    # Calendar and grammar.
    (
        "the 29th of February waits for a leap year",
        "0 0 29 2 *",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2025-01-01T00:00:00Z",
        ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
    ),
    (
        "restricted day-of-month and day-of-week: either matches",
        "0 0 13 * FRI",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T00:00:00Z",
        [
            "2026-01-02T00:00:00Z",
            "2026-01-09T00:00:00Z",
            "2026-01-13T00:00:00Z",
            "2026-01-16T00:00:00Z",
            "2026-01-23T00:00:00Z",
            "2026-01-30T00:00:00Z",
            "2026-02-06T00:00:00Z",
            "2026-02-13T00:00:00Z",
        ],
    ),
    (
        "a */2 day-of-month is unrestricted: both must match",
        "0 0 */2 * FRI",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T00:00:00Z",
        [
            "2026-01-09T00:00:00Z",
            "2026-01-23T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-27T00:00:00Z",
        ],
    ),
    (
        "names: Mondays of January",
        "0 9 * jan Mon",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T00:00:00Z",
        [
            "2026-01-05T09:00:00Z",
            "2026-01-12T09:00:00Z",
            "2026-01-19T09:00:00Z",
            "2026-01-26T09:00:00Z",
            "2027-01-04T09:00:00Z",
        ],
    ),
    (
        "day-of-week 7 is Sunday",
        "0 0 * * 7",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2026-05-03T00:00:00Z", "2026-05-10T00:00:00Z"],
    ),
    (
        "@yearly",
        "@yearly",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"],
    ),
    (
        "@annually",
        "@annually",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2027-01-01T00:00:00Z"],
    ),
    (
        "@monthly",
        "@monthly",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"],
    ),
    (
        "@weekly is Sunday midnight",
        "@weekly",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2026-05-03T00:00:00Z", "2026-05-10T00:00:00Z"],
    ),
    (
        "@daily",
        "@daily",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"],
    ),
    (
        "@midnight in Berlin",
        "@midnight",
        "Europe/Berlin",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2026-05-01T22:00:00Z", "2026-05-02T22:00:00Z"],
    ),
    (
        "@hourly",
        "@hourly",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-05-01T00:00:00Z",
        ["2026-05-01T01:00:00Z", "2026-05-01T02:00:00Z"],
    ),
    (
        "six fields: seconds first",
        "*/10 * * * * *",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T00:00:05Z",
        ["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:30Z"],
    ),
    (
        "six fields: 30 0 0 is 00:00:30",
        "30 0 0 * * *",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T00:00:00Z",
        ["2026-01-01T00:00:30Z", "2026-01-02T00:00:30Z"],
    ),
    (
        "after is exclusive",
        "0 * * * *",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T01:00:00Z",
        ["2026-01-01T02:00:00Z"],
    ),
    (
        "a fraction of a second before a time still gets it",
        "0 * * * *",
        "UTC",
        RUN_AFTER_GAP,
        AUTO,
        "2026-01-01T00:59:59.500000Z",
        ["2026-01-01T01:00:00Z"],
    ),
]


@pytest.mark.parametrize(
    ("expression", "zone", "skipped", "repeated", "after", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_fire_times_are_exact_utc_instants(
    expression: str,
    zone: str,
    skipped: SkippedTimes,
    repeated: RepeatedTimes,
    after: str,
    expected: list[str],
) -> None:
    schedule = cron(expression, zone, skipped, repeated)
    assert upcoming(schedule, utc(after), len(expected)) == [utc(t) for t in expected]


@pytest.mark.parametrize(
    ("expression", "zone", "skipped", "repeated", "after", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_count_agrees_with_the_fire_times(
    expression: str,
    zone: str,
    skipped: SkippedTimes,
    repeated: RepeatedTimes,
    after: str,
    expected: list[str],
) -> None:
    schedule = cron(expression, zone, skipped, repeated)
    assert schedule.count(utc(after), utc(expected[-1])) == len(expected)
    assert schedule.count(utc(after), utc(expected[-1]).replace(microsecond=1)) == len(expected)
    assert schedule.count(utc(expected[0]), utc(expected[-1])) == len(expected) - 1


@pytest.mark.parametrize(
    ("repeated", "expected"),
    [(AUTO, 31_536_000), (TWICE, 31_536_000), (ONCE, 31_536_000 - 3600)],
)
def test_a_year_of_seconds_in_new_york_is_counted_with_the_fold_rule(
    repeated: RepeatedTimes, expected: int
) -> None:
    schedule = cron("* * * * * *", "America/New_York", RUN_AFTER_GAP, repeated)
    count = schedule.count(utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"))
    assert count == expected


def test_a_daily_time_fires_every_day_of_a_year_in_london() -> None:
    schedule = cron("0 0 * * *", "Europe/London")
    assert schedule.count(utc("2025-12-31T12:00:00Z"), utc("2026-12-31T12:00:00Z")) == 365


def test_a_one_time_schedule_fires_once_strictly_after() -> None:
    schedule = compile_schedule(schedule=None, run_at="2026-12-01T10:00:00+01:00")
    assert schedule == OneTimeSchedule(run_at=utc("2026-12-01T09:00:00Z"))
    assert upcoming(schedule, utc("2026-12-01T08:59:59Z"), 3) == [utc("2026-12-01T09:00:00Z")]
    assert next_after(schedule, utc("2026-12-01T09:00:00Z")) is None
    assert schedule.count(utc("2026-12-01T08:00:00Z"), utc("2026-12-01T09:00:00Z")) == 1
    assert schedule.count(utc("2026-12-01T09:00:00Z"), utc("2026-12-01T10:00:00Z")) == 0


@pytest.mark.parametrize(
    ("run_at", "message"),
    [
        (
            "2026-12-01T09:00:00",
            "spec.runAt: '2026-12-01T09:00:00' has no UTC offset; add Z "
            "for UTC or an offset such as +01:00",
        ),
        (
            "2026-02-30T09:00:00Z",
            "spec.runAt: '2026-02-30T09:00:00Z' is not a valid date-time: "
            "day is out of range for month",
        ),
        (
            "tomorrow",
            "spec.runAt: 'tomorrow' is not an RFC 3339 date-time such as 2026-12-01T09:00:00Z",
        ),
    ],
)
def test_a_bad_run_at_is_invalid_run_at_naming_the_field(run_at: str, message: str) -> None:
    with pytest.raises(InvalidRunAt) as raised:
        compile_schedule(schedule=None, run_at=run_at)
    assert str(raised.value) == message
    assert raised.value.reason == "InvalidRunAt"


def test_a_one_time_schedule_still_needs_a_real_time_zone() -> None:
    with pytest.raises(InvalidTimeZone):
        compile_schedule(schedule=None, run_at="2026-12-01T09:00:00Z", time_zone="Nowhere/Land")


@pytest.mark.parametrize(("schedule", "run_at"), [(None, None), ("@daily", "2026-01-01T00:00:00Z")])
def test_exactly_one_of_schedule_and_run_at_compiles(
    schedule: str | None, run_at: str | None
) -> None:
    with pytest.raises(ScheduleError, match="exactly one of schedule, schedules and runAt"):
        compile_schedule(schedule=schedule, run_at=run_at)


def test_a_spec_compiles_with_its_zone_and_daylight_saving_rules() -> None:
    spec = make_spec(
        schedule="30 2 * * *",
        timeZone="America/New_York",
        daylightSaving={"skippedTimes": "Skip", "repeatedTimes": "Twice"},
    )
    schedule = schedule_of(spec)
    assert isinstance(schedule, CronSchedule)
    assert schedule.zone.key == "America/New_York"
    assert (schedule.skipped_times, schedule.repeated_times) == (SKIP, TWICE)
    assert schedule_of(spec) is schedule


def test_a_date_lost_to_daylight_saving_with_skip_fires_in_the_next_year_it_exists() -> None:
    # 2026-03-08 is the day New York springs forward; in 2027 and 2028 it is not.
    schedule = cron("30 2 8 3 *", "America/New_York", SKIP)
    times = upcoming(schedule, utc("2026-01-01T00:00:00Z"), 2)
    assert times == [utc("2027-03-08T07:30:00Z"), utc("2028-03-08T07:30:00Z")]


def test_fire_times_end_at_the_end_of_the_calendar_instead_of_searching_forever() -> None:
    # The last leap day before the year 10000 is 9996-02-29.
    schedule = cron("0 0 29 2 *")
    assert upcoming(schedule, utc("9990-01-01T00:00:00Z"), 3) == [
        utc("9992-02-29T00:00:00Z"),
        utc("9996-02-29T00:00:00Z"),
    ]
    assert next_after(schedule, utc("9996-03-01T00:00:00Z")) is None


def test_a_naive_instant_is_refused_rather_than_read_in_the_hosts_zone() -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        next_after(cron("@hourly"), naive)
    with pytest.raises(ValueError, match="naive"):
        cron("@hourly").count(naive, utc("2026-01-02T00:00:00Z"))
