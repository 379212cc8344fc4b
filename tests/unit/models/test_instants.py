"""Instants: strict RFC 3339 in, UTC with Z out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from trigger_operator.models.instants import RFC3339_PATTERN, format_instant, parse_instant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01t09:00:00z", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T10:00:00+01:00", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-11-30T23:30:00-09:30", datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T09:00:00.25Z", datetime(2026, 12, 1, 9, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-12-01T09:00:00.1234567Z", datetime(2026, 12, 1, 9, 0, 0, 123_456, tzinfo=UTC)),
    ],
)
def test_rfc3339_with_an_offset_parses_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-12-01T09:00:00", "has no UTC offset"),
        ("2026-12-01", "is not an RFC 3339 date-time"),
        ("2026-12-01 09:00:00Z", "is not an RFC 3339 date-time"),
        ("1700000000", "is not an RFC 3339 date-time"),
        ("2026-13-01T09:00:00Z", "is not a valid date-time"),
        ("2026-12-01T09:00:60Z", "is not a valid date-time"),
        ("2026-12-01T09:00:00+24:00", "is not a valid date-time"),
    ],
)
def test_anything_else_is_rejected(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_instant(text)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (datetime(2026, 11, 27, 1, 30, tzinfo=UTC), "2026-11-27T01:30:00Z"),
        (
            datetime(2026, 11, 27, 2, 30, tzinfo=timezone(timedelta(hours=1))),
            "2026-11-27T01:30:00Z",
        ),
        (datetime(2026, 11, 27, 1, 30, 0, 500_000, tzinfo=UTC), "2026-11-27T01:30:00.500000Z"),
    ],
)
def test_instants_are_written_in_utc_with_z(instant: datetime, expected: str) -> None:
    assert format_instant(instant) == expected
    assert parse_instant(expected) == instant


def test_formatting_a_naive_datetime_is_an_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_instant(datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026-12-01T09:00:00Z", True),
        ("2026-12-01T09:00:00.5+01:00", True),
        ("2026-12-01T09:00:00", False),
        ("2026-12-01", False),
    ],
)
def test_the_schema_pattern_accepts_the_same_shape(text: str, valid: bool) -> None:
    import re

    assert (re.fullmatch(RFC3339_PATTERN, text) is not None) is valid
