"""Reading a run from its Job, and which finished Jobs the history limits prune."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from trigger_operator.jobs.state import ObservedJob, RunResult, observe_job, to_prune


def _job(
    name: str, *, scheduled: str, condition: str | None = None, finished: str | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": scheduled}
    if condition:
        status["conditions"] = [
            {"type": condition, "status": "True", "lastTransitionTime": finished or scheduled}
        ]
        if condition == "Complete":
            status["completionTime"] = finished
        else:
            status["failed"] = 2
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {"triggers.dev/trigger-uid": "t-uid"},
            "annotations": {"triggers.dev/scheduled-for": scheduled},
            "ownerReferences": [
                {"kind": "ScheduledTrigger", "name": "tick", "uid": "t-uid", "controller": True}
            ],
        },
        "status": status,
    }


def test_a_job_without_final_condition_is_running() -> None:
    state = observe_job(_job("a", scheduled="2026-11-27T01:30:00Z"))
    assert state.result is RunResult.RUNNING
    assert state.scheduled_for == datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    assert (state.trigger_uid, state.trigger_name, state.namespace) == ("t-uid", "tick", "ns")


def test_complete_and_failed_conditions_give_the_result_and_finish_time() -> None:
    done = observe_job(
        _job(
            "a",
            scheduled="2026-11-27T01:30:00Z",
            condition="Complete",
            finished="2026-11-27T01:31:00Z",
        )
    )
    failed = observe_job(
        _job(
            "b",
            scheduled="2026-11-27T01:30:00Z",
            condition="Failed",
            finished="2026-11-27T01:32:00Z",
        )
    )
    assert done.result is RunResult.SUCCEEDED
    assert done.finished == datetime(2026, 11, 27, 1, 31, tzinfo=UTC)
    assert failed.result is RunResult.FAILED
    assert failed.failed_pods == 2


def _runs() -> list[ObservedJob]:
    jobs = [
        _job(
            f"ok{i}",
            scheduled=f"2026-11-27T01:3{i}:00Z",
            condition="Complete",
            finished=f"2026-11-27T01:3{i}:30Z",
        )
        for i in range(5)
    ]
    jobs += [
        _job(
            f"bad{i}",
            scheduled=f"2026-11-27T02:0{i}:00Z",
            condition="Failed",
            finished=f"2026-11-27T02:0{i}:30Z",
        )
        for i in range(3)
    ]
    jobs.append(_job("live", scheduled="2026-11-27T00:00:00Z"))
    return [observe_job(job) for job in jobs]


def test_pruning_keeps_the_newest_of_each_result_and_never_touches_running_jobs() -> None:
    doomed = {run.name for run in to_prune(_runs(), keep_succeeded=3, keep_failed=1)}
    assert doomed == {"ok0", "ok1", "bad0", "bad1"}


def test_a_limit_of_zero_prunes_every_finished_job_of_that_result() -> None:
    doomed = {run.name for run in to_prune(_runs(), keep_succeeded=0, keep_failed=5)}
    assert doomed == {f"ok{i}" for i in range(5)}
