"""Instants: strict RFC 3339 in, UTC with Z out, the same text wherever an instant is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from trigger_operator.jobs.builder import (
    ANNOTATION_SCHEDULED_FOR,
    LeaderIdentity,
    RunKind,
    TriggerRef,
    build_job,
)
from trigger_operator.jobs.state import observe_job
from trigger_operator.ledger.records import RunRef
from trigger_operator.models.instants import (
    RFC3339_PATTERN,
    format_instant,
    format_micro_time,
    parse_api_time,
    parse_instant,
)
from trigger_operator.models.status import LastRun, RunResult, TriggerStatus
from trigger_operator.schedule.times import compile_schedule, upcoming


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
        (datetime(2026, 11, 27, 1, 30, 0, 500_000, tzinfo=UTC), "2026-11-27T01:30:00.5Z"),
        (datetime(2026, 11, 27, 1, 30, 0, 123_456, tzinfo=UTC), "2026-11-27T01:30:00.123456Z"),
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


def test_a_fractional_run_at_reads_the_same_in_the_job_the_status_and_the_ledger() -> None:
    uid = "0b7e1c8e-aaaa-4bbb-8ccc-000000000001"
    written = "2026-12-01T10:00:00.250+01:00"
    expected = "2026-12-01T09:00:00.25Z"
    [fire] = upcoming(
        compile_schedule(schedule=None, run_at=written), datetime(2026, 1, 1, tzinfo=UTC), 1
    )
    trigger = TriggerRef(namespace="team-a", name="once", uid=uid)
    template = {"spec": {"template": {"spec": {"containers": [{"name": "run"}]}}}}
    job = build_job(
        trigger,
        template,
        scheduled_for=fire,
        kind=RunKind.SCHEDULED,
        writer=LeaderIdentity(identity="pod-a", revision=1),
    )
    env = {
        item["name"]: item["value"]
        for item in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    status = TriggerStatus(
        last_schedule_time=fire,
        last_run=LastRun(
            name=job["metadata"]["name"], scheduled_for=fire, result=RunResult.RUNNING
        ),
    ).model_dump(mode="json")
    ref = RunRef.scheduled(
        namespace=trigger.namespace,
        trigger_name=trigger.name,
        trigger_uid=uid,
        scheduled_for=fire,
        job_name=job["metadata"]["name"],
    )

    assert job["metadata"]["annotations"][ANNOTATION_SCHEDULED_FOR] == expected
    assert env["TRIGGER_SCHEDULED_FOR"] == expected
    assert status["lastScheduleTime"] == expected
    assert status["lastRun"]["scheduledFor"] == expected
    assert ref.key == f"{uid}/{expected}"
    assert ref.log_context()["scheduled_for"] == expected
    # Read back from the Job, the instant is the one the schedule gave.
    assert observe_job(job).scheduled_for == fire == parse_instant(expected)


def test_a_lease_micro_time_always_has_six_fraction_digits() -> None:
    assert format_micro_time(datetime(2026, 11, 27, 1, 30, tzinfo=UTC)) == (
        "2026-11-27T01:30:00.000000Z"
    )
    assert format_micro_time(
        datetime(2026, 11, 27, 2, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=1)))
    ) == ("2026-11-27T01:30:00.250000Z")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-27T01:30:00Z", datetime(2026, 11, 27, 1, 30, tzinfo=UTC)),
        (datetime(2026, 11, 27, 1, 30, tzinfo=UTC), datetime(2026, 11, 27, 1, 30, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_api_times_read_as_utc_or_none(value: object, expected: datetime | None) -> None:
    assert parse_api_time(value) == expected
