"""The croniter-based grammar reads every expression of the old grammar as the old parser did.

Expressions are generated from the old grammar (lists of `*`, `N`, `N-M`, steps, names,
day-of-week 7 and `FRI-SUN`, macros, six fields), including some it rejects; both parsers
must accept or reject the same text, and, when they accept it, match the same days over
four years and the same wall-clock times from a random start.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import islice

from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_operator.schedule import cron_legacy
from trigger_operator.schedule.cron import MACROS, CronExpression, parse_cron
from trigger_operator.schedule.errors import InvalidSchedule
from trigger_operator.schedule.walltime import count_wall_times, wall_times

MONTHS = ["JAN", "feb", "Mar", "APR", "may", "JUN", "jul", "AUG", "sep", "OCT", "nov", "DEC"]
DAYS = ["SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"]


def value(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    # A little past the bounds on both sides, so that out-of-range values are compared too.
    numbers = st.integers(low - 1 if low else 0, high + 1).map(str)
    if not names:
        return numbers
    return st.one_of(numbers, st.sampled_from(names))


def item(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    single = value(low, high, names)
    step = st.integers(0, high + 2).map(lambda s: f"/{s}")
    return st.one_of(
        st.just("*"),
        st.builds(lambda s: f"*{s}", step),
        single,
        st.builds(lambda a, b: f"{a}-{b}", single, single),
        st.builds(lambda a, b, s: f"{a}-{b}{s}", single, single, step),
        st.builds(lambda a, s: f"{a}{s}", single, step),
    )


def field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    return st.lists(item(low, high, names), min_size=1, max_size=3).map(",".join)


five_fields = st.builds(
    lambda *parts: " ".join(parts),
    field(0, 59),
    field(0, 23),
    field(1, 31),
    field(1, 12, MONTHS),
    field(0, 7, DAYS),
)
expressions = st.one_of(
    five_fields,
    st.builds(lambda s, rest: f"{s} {rest}", field(0, 59), five_fields),
    st.sampled_from(sorted(MACROS)),
)


def parse_both(text: str) -> tuple[CronExpression | str, CronExpression | str]:
    def attempt(parse: object) -> CronExpression | str:
        try:
            return parse(text)  # type: ignore[operator, no-any-return]
        except InvalidSchedule:
            return "rejected"

    return attempt(parse_cron), attempt(cron_legacy.parse_cron)


@settings(max_examples=3000, deadline=None)
@given(text=expressions)
def test_both_parsers_accept_the_same_text_and_allow_the_same_values(text: str) -> None:
    new, old = parse_both(text)
    assert (new == "rejected") == (old == "rejected"), (text, new, old)
    if isinstance(new, str) or isinstance(old, str):
        return
    assert (new.seconds, new.minutes, new.hours) == (old.seconds, old.minutes, old.hours)
    assert (new.months, new.interval_hours) == (old.months, old.interval_hours)
    assert (new.days_restricted, new.weekdays_restricted) == (
        old.days_restricted,
        old.weekdays_restricted,
    )


@settings(max_examples=400, deadline=None)
@given(
    text=expressions,
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31)),  # noqa: DTZ001
)
def test_both_parsers_match_the_same_times(text: str, start: datetime) -> None:
    new, old = parse_both(text)
    if isinstance(new, str) or isinstance(old, str):
        return
    first = date(2024, 1, 1)
    for offset in range(4 * 366):
        day = first + timedelta(days=offset)
        assert new.matches_date(day) == old.matches_date(day), (text, day)
    end = start + timedelta(days=4 * 366)
    assert list(islice(wall_times(new, start, end), 300)) == list(
        islice(wall_times(old, start, end), 300)
    )
    assert count_wall_times(new, start, end) == count_wall_times(old, start, end)
