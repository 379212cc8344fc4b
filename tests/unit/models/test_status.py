"""The status model: RFC 3339 instants, the active count, and a bounded run-now record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trigger_operator.models.status import (
    RUN_NOW_HISTORY_LIMIT,
    ActiveRun,
    LastRun,
    RunResult,
    TriggerStatus,
)

T = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)


def test_status_is_written_in_camel_case_with_utc_instants() -> None:
    status = TriggerStatus(
        observed_generation=4,
        next_run_at=T,
        upcoming_runs=[T, T + timedelta(days=1)],
        last_run=LastRun(name="nightly-abc", scheduled_for=T, result=RunResult.SUCCEEDED),
        active=[ActiveRun(name="nightly-abc", uid="u-1")],
    )
    dumped = status.model_dump(mode="json", exclude_none=True)
    assert dumped["observedGeneration"] == 4
    assert dumped["nextRunAt"] == "2026-11-27T01:30:00Z"
    assert dumped["upcomingRuns"] == ["2026-11-27T01:30:00Z", "2026-11-28T01:30:00Z"]
    assert dumped["lastRun"] == {
        "name": "nightly-abc",
        "scheduledFor": "2026-11-27T01:30:00Z",
        "result": "Succeeded",
    }
    assert dumped["activeCount"] == 1
    assert TriggerStatus.model_validate(dumped) == status


def test_instants_read_with_an_offset_are_held_in_utc() -> None:
    status = TriggerStatus.model_validate({"cursor": "2026-11-27T02:30:00+01:00"})
    assert status.cursor == T
    assert status.cursor is not None and status.cursor.tzinfo is UTC


def test_the_active_count_follows_the_active_runs() -> None:
    assert TriggerStatus().active_count == 0
    two = [ActiveRun(name="a", uid="1"), ActiveRun(name="b", uid="2")]
    assert TriggerStatus(active=two).model_dump(mode="json")["activeCount"] == 2


def test_run_now_values_are_remembered_up_to_the_limit_oldest_dropped() -> None:
    status = TriggerStatus()
    for n in range(RUN_NOW_HISTORY_LIMIT + 3):
        status = status.with_run_now(f"v{n}", handled_at=T + timedelta(minutes=n))
    assert [record.value for record in status.run_now] == [
        f"v{n}" for n in range(3, RUN_NOW_HISTORY_LIMIT + 3)
    ]
    assert status.handled_run_now("v3")
    assert not status.handled_run_now("v2")
