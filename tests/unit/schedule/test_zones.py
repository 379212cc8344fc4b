"""Time zones: IANA names only, and transitions found to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from trigger_operator.schedule.errors import InvalidTimeZone
from trigger_operator.schedule.zones import load_zone, segments, transitions_in_year

H = timedelta(hours=1)


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Etc/GMT+5"])
def test_iana_names_load(name: str) -> None:
    assert load_zone(name).key == name


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "utc", "America", "", "../etc/passwd", "localtime", "posixrules"]
)
def test_anything_else_is_an_invalid_time_zone_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidTimeZone) as raised:
        load_zone(name)
    assert str(raised.value) == (
        f"spec.timeZone: unknown time zone '{name}'; use an IANA name such as Europe/Berlin"
    )
    assert raised.value.reason == "InvalidTimeZone"


@pytest.mark.parametrize(
    ("zone", "year", "expected"),
    [
        (
            "America/New_York",
            2026,
            [
                (datetime(2026, 3, 8, 7, tzinfo=UTC), -5 * H, -4 * H),
                (datetime(2026, 11, 1, 6, tzinfo=UTC), -4 * H, -5 * H),
            ],
        ),
        (
            "Australia/Lord_Howe",
            2026,
            [
                (datetime(2026, 4, 4, 15, tzinfo=UTC), 11 * H, 10.5 * H),
                (datetime(2026, 10, 3, 15, 30, tzinfo=UTC), 10.5 * H, 11 * H),
            ],
        ),
        ("UTC", 2026, []),
        ("Asia/Tokyo", 2026, []),
    ],
)
def test_transitions_are_found_to_the_second(
    zone: str, year: int, expected: list[tuple[datetime, timedelta, timedelta]]
) -> None:
    found = transitions_in_year(ZoneInfo(zone), year)
    assert [(t.at, t.before, t.after) for t in found] == expected


def test_samoa_skipping_a_whole_day_is_one_forward_transition() -> None:
    (*_, last) = transitions_in_year(ZoneInfo("Pacific/Apia"), 2011)
    assert (last.at, last.before, last.after) == (
        datetime(2011, 12, 30, 10, tzinfo=UTC),
        -10 * H,
        14 * H,
    )
    assert last.is_gap
    assert not last.is_fold


def test_segments_tile_time_without_gaps_or_overlaps() -> None:
    zone = ZoneInfo("Europe/London")
    since = datetime(2025, 6, 1, tzinfo=UTC)
    until = datetime(2028, 6, 1, tzinfo=UTC)
    pieces = list(segments(zone, since, until))
    assert pieces[0].start <= since < pieces[0].end
    assert pieces[-1].start < until <= pieces[-1].end
    for before, after in pairwise(pieces):
        assert before.end == after.start
    for piece in pieces:
        assert piece.offset == piece.start.astimezone(zone).utcoffset()
        if piece.entered_by is not None:
            assert piece.entered_by.at == piece.start
            assert piece.entered_by.after == piece.offset


def test_the_first_segment_knows_the_transition_it_started_with() -> None:
    zone = ZoneInfo("America/New_York")
    inside_the_fold = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    first = next(segments(zone, inside_the_fold, inside_the_fold + H))
    assert first.entered_by is not None
    assert first.entered_by.at == datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert first.entered_by.is_fold
