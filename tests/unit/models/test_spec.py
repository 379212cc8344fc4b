"""The spec model: camelCase on the wire, defaults, and the checks a schema can make."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from trigger_operator.models.spec import (
    PAYLOAD_MAX_BYTES,
    PAYLOAD_MAX_DEPTH,
    CatchUp,
    ConcurrencyPolicy,
    RepeatedTimes,
    SkippedTimes,
    TriggerSpec,
)

JOB_TEMPLATE = {"spec": {"template": {"spec": {"containers": [{"name": "run"}]}}}}


def spec(**fields: Any) -> TriggerSpec:
    return TriggerSpec.model_validate(
        {"schedule": "30 2 * * *", "jobTemplate": JOB_TEMPLATE, **fields}
    )


def test_the_design_example_reads_into_typed_fields() -> None:
    parsed = TriggerSpec.model_validate(
        {
            "schedule": "30 2 * * *",
            "timeZone": "Europe/Berlin",
            "suspend": False,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "catchUp": "Latest",
            "maxCatchUpRuns": 10,
            "jitterSeconds": 0,
            "daylightSaving": {"skippedTimes": "RunAfterGap", "repeatedTimes": "Auto"},
            "payload": {"report": "sales"},
            "successfulRunsHistoryLimit": 3,
            "failedRunsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "report"}}, "spec": {"backoffLimit": 3}},
        }
    )
    assert parsed.time_zone == "Europe/Berlin"
    assert parsed.concurrency_policy is ConcurrencyPolicy.FORBID
    assert parsed.starting_deadline_seconds == 600
    assert parsed.payload == {"report": "sales"}
    assert parsed.job_template.metadata.labels == {"app": "report"}
    assert parsed.job_template.spec == {"backoffLimit": 3}


def test_defaults_follow_the_design() -> None:
    parsed = spec()
    assert parsed.run_at is None
    assert parsed.time_zone == "UTC"
    assert parsed.suspend is False
    assert parsed.concurrency_policy is ConcurrencyPolicy.ALLOW
    assert parsed.starting_deadline_seconds is None
    assert parsed.catch_up is CatchUp.LATEST
    assert parsed.max_catch_up_runs == 10
    assert parsed.jitter_seconds == 0
    assert parsed.daylight_saving.skipped_times is SkippedTimes.RUN_AFTER_GAP
    assert parsed.daylight_saving.repeated_times is RepeatedTimes.AUTO
    assert parsed.payload is None
    assert parsed.successful_runs_history_limit == 3
    assert parsed.failed_runs_history_limit == 1


def test_fields_are_written_in_camel_case_and_read_by_either_name() -> None:
    parsed = TriggerSpec(schedule="@daily", max_catch_up_runs=5, job_template=JOB_TEMPLATE)
    dumped = parsed.model_dump(mode="json")
    assert dumped["maxCatchUpRuns"] == 5
    assert dumped["daylightSaving"] == {"skippedTimes": "RunAfterGap", "repeatedTimes": "Auto"}
    assert TriggerSpec.model_validate(dumped) == parsed


@pytest.mark.parametrize(
    "fields",
    [
        {"schedule": None},
        {"runAt": "2026-12-01T09:00:00Z"},
        {"schedules": ["0 9 * * *"]},
        {"schedule": None, "schedules": ["0 9 * * *"], "runAt": "2026-12-01T09:00:00Z"},
    ],
)
def test_exactly_one_of_schedule_schedules_and_run_at(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of schedule, schedules and runAt"):
        spec(**fields)


def test_schedules_alone_is_a_list_of_expressions() -> None:
    parsed = spec(schedule=None, schedules=["0 9 * * MON-FRI", "0 12 * * SAT,SUN"])
    assert parsed.schedules == ["0 9 * * MON-FRI", "0 12 * * SAT,SUN"]
    with pytest.raises(ValidationError):
        spec(schedule=None, schedules=[])
    with pytest.raises(ValidationError):
        spec(schedule=None, schedules=[""])


def test_run_at_alone_is_a_one_time_trigger() -> None:
    assert spec(schedule=None, runAt="2026-12-01T09:00:00Z").run_at == "2026-12-01T09:00:00Z"


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"concurrencyPolicy": "Sometimes"}, "concurrencyPolicy"),
        ({"catchUp": "Some"}, "catchUp"),
        ({"daylightSaving": {"skippedTimes": "Later"}}, "daylightSaving.skippedTimes"),
        ({"daylightSaving": {"repeatedTimes": "Thrice"}}, "daylightSaving.repeatedTimes"),
        ({"startingDeadlineSeconds": -1}, "startingDeadlineSeconds"),
        ({"maxCatchUpRuns": 0}, "maxCatchUpRuns"),
        ({"maxCatchUpRuns": 1001}, "maxCatchUpRuns"),
        ({"jitterSeconds": -5}, "jitterSeconds"),
        ({"successfulRunsHistoryLimit": -1}, "successfulRunsHistoryLimit"),
        ({"failedRunsHistoryLimit": -1}, "failedRunsHistoryLimit"),
        ({"schedule": ""}, "schedule"),
        ({"timeZone": ""}, "timeZone"),
        ({"schedule": None, "runAt": "2026-12-01T09:00:00"}, "runAt"),
        ({"schedule": None, "runAt": "2026-12-01 09:00:00Z"}, "runAt"),
        ({"schedule": None, "runAt": "next tuesday"}, "runAt"),
        ({"jobTemplate": {"metadata": {}}}, "jobTemplate.spec"),
    ],
)
def test_what_a_schema_can_see_is_rejected_naming_the_field(
    fields: dict[str, Any], location: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(**fields)
    assert [".".join(map(str, error["loc"])) for error in raised.value.errors()] == [location]


def test_a_spec_is_immutable() -> None:
    with pytest.raises(ValidationError):
        spec().suspend = True  # type: ignore[misc]


def test_unknown_fields_are_ignored() -> None:
    assert spec(someFutureField=1) == spec()


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"next": value}
    return value


@pytest.mark.parametrize(
    "payload",
    [None, "text", 7, [], {"report": "sales"}, _nested(PAYLOAD_MAX_DEPTH), "x" * 32_000],
)
def test_a_payload_within_the_bounds_is_kept(payload: Any) -> None:
    assert spec(payload=payload).payload == payload


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_nested(PAYLOAD_MAX_DEPTH + 1), "more than 32 levels of nesting"),
        ([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "levels"),
        ({"blob": "x" * PAYLOAD_MAX_BYTES}, f"more than {PAYLOAD_MAX_BYTES}"),
        (["é" * 11_000], "bytes as JSON"),  # JSON escapes it to six bytes each
    ],
)
def test_a_payload_too_large_or_too_deep_is_refused_naming_the_field(
    payload: Any, problem: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        spec(payload=payload)
    (error,) = raised.value.errors()
    assert error["loc"] == ("payload",)
    assert problem in error["msg"]
