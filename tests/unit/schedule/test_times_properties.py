"""Properties of fire times, checked against a brute-force oracle minute by minute.

The oracle knows nothing of segments: it asks zoneinfo, for every UTC minute of a
window, what the wall clock reads, whether that reading is the second occurrence of a
repeated time (PEP 495 `fold`), and whether the minute ends a gap, and applies the
daylight-saving rules from DESIGN.md literally.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trigger_operator.models.spec import DaylightSaving, RepeatedTimes, SkippedTimes
from trigger_operator.schedule.cron import CronExpression, parse_cron
from trigger_operator.schedule.errors import InvalidSchedule
from trigger_operator.schedule.times import CronSchedule, compile_schedule
from trigger_operator.schedule.zones import transitions_in_year

MINUTE = timedelta(minutes=1)
ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "UTC",
]

# Day fields that match most days, so that most windows around a change of the clocks
# hold matches; hours 1-3 are where New York, London and Lord Howe change them.
expressions = st.builds(
    " ".join,
    st.tuples(
        st.sampled_from(["*", "*/15", "0", "30", "0,30", "15-45/15", "45", "*/7"]),
        st.sampled_from(["*", "*/2", "1", "2", "1-3", "0,12", "23", "*/5"]),
        st.sampled_from(["*", "*", "*/2", "8-14", "1"]),
        st.sampled_from(["*", "*", "3,4,9,10,11,12", "*/2"]),
        st.sampled_from(["*", "*", "SUN", "0,6", "MON-FRI"]),
    ),
)


def _compile(text: str, zone: str, skipped: SkippedTimes, repeated: RepeatedTimes) -> CronSchedule:
    try:
        schedule = compile_schedule(
            schedule=text,
            run_at=None,
            time_zone=zone,
            daylight_saving=DaylightSaving(skipped_times=skipped, repeated_times=repeated),
        )
    except InvalidSchedule:
        assume(False)
        raise
    assert isinstance(schedule, CronSchedule)
    return schedule


@st.composite
def windows(draw: st.DrawFn, zone: str, hours: int) -> tuple[datetime, datetime]:
    """A window of `hours`, mostly around one of the zone's transitions, else anywhere."""
    year = draw(st.integers(2010, 2030))
    transitions = transitions_in_year(ZoneInfo(zone), year)
    if transitions and draw(st.sampled_from(["transition"] * 4 + ["anywhere"])) == "transition":
        anchor = draw(st.sampled_from(transitions)).at
        start = anchor - timedelta(minutes=draw(st.integers(1, hours * 60 - 1)))
    else:
        start = datetime(year, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 525_000)))
    start += timedelta(seconds=draw(st.sampled_from([0, 1, 59])))
    return start, start + timedelta(hours=hours)


def oracle(
    expression: CronExpression,
    zone: ZoneInfo,
    skipped: SkippedTimes,
    twice: bool,
    start: datetime,
    end: datetime,
) -> list[datetime]:
    fired: list[datetime] = []
    instant = start.replace(second=0, microsecond=0) + MINUTE
    while instant <= end:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        offset_before = (instant - timedelta(seconds=1)).astimezone(zone).utcoffset()
        offset_now = local.utcoffset()
        assert offset_before is not None and offset_now is not None
        fires = False
        if offset_now > offset_before and skipped is SkippedTimes.RUN_AFTER_GAP:
            skipped_wall = (instant + offset_before).replace(tzinfo=None)
            while skipped_wall < (instant + offset_now).replace(tzinfo=None):
                fires = fires or expression.matches(skipped_wall)
                skipped_wall += MINUTE
        if expression.matches(wall):
            repeated = (
                wall.replace(tzinfo=zone, fold=0).utcoffset()
                != wall.replace(tzinfo=zone, fold=1).utcoffset()
            )
            fires = fires or not (repeated and local.fold == 1) or twice
        if fires:
            fired.append(instant)
        instant += MINUTE
    return fired


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    text=expressions,
    zone_name=st.sampled_from(ZONES),
    skipped=st.sampled_from(list(SkippedTimes)),
    repeated=st.sampled_from(list(RepeatedTimes)),
    hours=st.sampled_from([3, 12, 24, 48]),
)
def test_fire_times_are_exactly_the_minutes_the_oracle_fires(
    data: st.DataObject,
    text: str,
    zone_name: str,
    skipped: SkippedTimes,
    repeated: RepeatedTimes,
    hours: int,
) -> None:
    schedule = _compile(text, zone_name, skipped, repeated)
    start, end = data.draw(windows(zone_name, hours))
    expected = oracle(
        schedule.expression, schedule.zone, skipped, schedule.fires_twice_in_folds, start, end
    )
    listed = list(takewhile(lambda t: t <= end, schedule.fire_times(start)))
    assert listed == expected
    assert schedule.count(start, end) == len(expected)


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    text=expressions,
    seconds=st.sampled_from(["0", "*/20", "5,50"]),
    zone_name=st.sampled_from(ZONES),
    skipped=st.sampled_from(list(SkippedTimes)),
    repeated=st.sampled_from(list(RepeatedTimes)),
)
def test_fire_times_increase_strictly_and_each_matches_its_wall_clock_or_ends_a_gap(
    data: st.DataObject,
    text: str,
    seconds: str,
    zone_name: str,
    skipped: SkippedTimes,
    repeated: RepeatedTimes,
) -> None:
    schedule = _compile(f"{seconds} {text}", zone_name, skipped, repeated)
    after, _ = data.draw(windows(zone_name, 12))
    times = _first(schedule, after, 60)
    assert all(a < b for a, b in zip([after, *times], times, strict=False))
    for instant in times:
        local = instant.astimezone(schedule.zone)
        ends_gap = (instant - timedelta(seconds=1)).astimezone(schedule.zone).utcoffset() != (
            local.utcoffset()
        )
        assert ends_gap or schedule.expression.matches(local.replace(tzinfo=None))
    if times:
        assert schedule.count(after, times[-1]) == len(times)


def _first(schedule: CronSchedule, after: datetime, n: int) -> list[datetime]:
    times: list[datetime] = []
    for instant in schedule.fire_times(after):
        times.append(instant)
        if len(times) == n:
            break
    return times


def test_the_oracle_sees_the_new_york_gap_and_fold() -> None:
    zone = ZoneInfo("America/New_York")
    expression = parse_cron("30 1,2 * * *")
    spring = oracle(
        expression,
        zone,
        SkippedTimes.RUN_AFTER_GAP,
        False,
        datetime(2026, 3, 8, 5, tzinfo=UTC),
        datetime(2026, 3, 8, 9, tzinfo=UTC),
    )
    autumn = oracle(
        expression,
        zone,
        SkippedTimes.RUN_AFTER_GAP,
        True,
        datetime(2026, 11, 1, 5, tzinfo=UTC),
        datetime(2026, 11, 1, 9, tzinfo=UTC),
    )
    assert spring == [datetime(2026, 3, 8, 6, 30, tzinfo=UTC), datetime(2026, 3, 8, 7, tzinfo=UTC)]
    assert autumn == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 7, 30, tzinfo=UTC),
    ]
