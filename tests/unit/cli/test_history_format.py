"""How `history` reads times and prints durations (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trigger_operator.cli.history import format_duration, parse_since

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - timedelta(minutes=90)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("1d12h", NOW - timedelta(hours=36)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T09:00:00+01:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T08:00:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
    ],
)
def test_since_accepts_ages_dates_and_rfc3339(text: str, expected: datetime) -> None:
    assert parse_since(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-1h", "2026-13-01"])
def test_since_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_since(text, now=NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.9, "42s"), (185, "3m05s"), (7380, "2h03m"), (273600, "3d04h"), (-3, "0s")],
)
def test_durations_are_short_and_exact_to_the_second(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
