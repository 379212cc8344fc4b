"""The grammar reads the classic cron forms as a brute-force oracle reads them literally.

Expressions are generated from the classic grammar (lists of `*`, `N`, `N-M`, steps,
names, day-of-week 7 and `FRI-SUN`, macros, six fields), including some out of range.
This test first compared the croniter-based parser with the hand-written one it replaced
(accept and reject the same text; the same days over four years and the same times from a
random start; 3,000 and 400 examples per run, several runs, no difference once equal
ranges such as `0-0` were bridged). The old parser is gone; the oracle in `oracle.py`
keeps the comparison meaningful. Against the oracle one more case came up, which the
old parser got wrong too: `7/2` in day-of-week was no day at all (a never-firing
schedule accepted silently); it now steps from Sunday, as `0/2` does.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.schedule.oracle import brute_force_times, date_matches
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


def parse(text: str) -> CronExpression | None:
    try:
        return parse_cron(text)
    except InvalidSchedule:
        return None


def literal(text: str) -> str:
    """The oracle reads fields, not macros."""
    return MACROS.get(text.lower(), text)


@settings(max_examples=1500, deadline=None)
@given(text=expressions)
def test_accepted_expressions_match_the_days_the_oracle_matches(text: str) -> None:
    expression = parse(text)
    if expression is None:
        return
    first = date(2024, 1, 1)
    for offset in range(4 * 366):
        day = first + timedelta(days=offset)
        assert expression.matches_date(day) == date_matches(literal(text), day), (text, day)


@settings(max_examples=150, deadline=None)
@given(
    text=expressions,
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31)),  # noqa: DTZ001
)
def test_accepted_expressions_list_and_count_the_times_the_oracle_finds(
    text: str, start: datetime
) -> None:
    expression = parse(text)
    if expression is None:
        return
    end = start + timedelta(days=3)
    expected = [
        t
        for t in brute_force_times(literal(text), start.date(), end.date() + timedelta(days=1))
        if start <= t < end
    ]
    assert list(wall_times(expression, start, end)) == expected
    assert count_wall_times(expression, start, end) == len(expected)
