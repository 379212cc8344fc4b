"""The scheduler on the real control plane: cron and one-time triggers become Jobs.

Every test runs a real operator process against the dev cluster and checks what the
API server holds: Jobs (names, annotations, environment, owner), trigger status, Events.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.jobs.builder import TriggerRef, scheduled_job_name
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.records import LedgerStatus
from trigger_operator.ledger.store import LedgerStore, RunQuery
from trigger_operator.ledger.tables import Run
from trigger_operator.models.instants import format_instant, parse_instant

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]

# A crashed leader's Lease must expire before a survivor leads: keep that wait short.
SHORT_LEASE = {
    "lease_duration_seconds": "3",
    "renew_interval_seconds": "1",
    "retry_period_seconds": "1",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _env(job: Any) -> dict[str, str]:
    container = job.spec.template.spec.containers[0]
    return {item.name: item.value for item in container.env or []}


def _assert_no_duplicates(triggers: Triggers, name: str) -> list[str]:
    times = triggers.scheduled_times(name)
    duplicates = [t for t, n in Counter(times).items() if n > 1]
    assert not duplicates, f"duplicate Jobs for {duplicates}"
    return times


def _wait_for_times_after(triggers: Triggers, name: str, after: datetime, *, count: int) -> None:
    """Wait until `name` has `count` Jobs scheduled after `after`."""
    wait_for(
        lambda: (
            len([t for t in triggers.scheduled_times(name) if parse_instant(t) > after]) >= count
        ),
        timeout=30,
        message=f"{count} Jobs of {name} scheduled after {format_instant(after)}",
    )


def _ready_with_status(triggers: Triggers, name: str, status: str) -> dict[str, Any] | None:
    """The Ready condition of `name` when its status is `status`, else None."""
    ready = triggers.ready(name)
    return ready if ready is not None and ready["status"] == status else None


def _wait_for_cursor(triggers: Triggers, name: str, at_least: datetime) -> None:
    """Wait until the scheduler has handled every time of `name` up to `at_least`."""
    wait_for(
        lambda: (
            (cursor := triggers.status(name).get("cursor")) and parse_instant(cursor) >= at_least
        ),
        timeout=30,
        message=f"the cursor of {name} at {format_instant(at_least)} or later",
    )


def test_every_two_seconds_trigger_creates_one_named_job_per_time(
    triggers: Triggers, operators: Start
) -> None:
    trigger = triggers.create(
        manifest("tick", schedule="*/2 * * * * *", payload={"report": "sales"})
    )
    uid = trigger["metadata"]["uid"]
    operators()

    def three_jobs() -> list[Any] | None:
        found = triggers.jobs("tick")
        return found if len(found) >= 3 else None

    jobs = wait_for(
        three_jobs,
        timeout=30,
        message="three Jobs of tick",
    )

    ref = TriggerRef(namespace=triggers.namespace, name="tick", uid=uid)
    times = _assert_no_duplicates(triggers, "tick")
    for job in jobs:
        scheduled_for = parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"])
        assert scheduled_for.second % 2 == 0
        assert job.metadata.name == scheduled_job_name(ref, scheduled_for)
        assert job.metadata.labels["triggers.dev/trigger"] == "tick"
        assert job.metadata.labels["triggers.dev/trigger-uid"] == uid
        assert job.metadata.annotations["triggers.dev/leader"] == "operator"
        assert job.metadata.annotations["triggers.dev/revision"] == "0"
        owner = job.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "ScheduledTrigger",
            "tick",
            uid,
            True,
        )
        env = _env(job)
        assert env["TRIGGER_NAME"] == "tick"
        assert env["TRIGGER_NAMESPACE"] == triggers.namespace
        assert env["TRIGGER_SCHEDULED_FOR"] == format_instant(scheduled_for)
        assert env["TRIGGER_RUN_ID"] == job.metadata.name
        assert env["TRIGGER_PAYLOAD"] == '{"report": "sales"}'
    # Consecutive times, two seconds apart: nothing skipped in between.
    instants = [parse_instant(t) for t in times]
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(instants))

    status = wait_for(
        lambda: (s := triggers.status("tick")).get("lastSuccessfulTime") and s,
        timeout=30,
        message="lastSuccessfulTime in status",
    )
    assert status["lastRun"]["name"].startswith("tick-")
    assert status["lastRun"]["result"] in ("Running", "Succeeded")
    assert parse_instant(status["nextRunAt"]) > parse_instant(status["lastScheduleTime"])
    assert triggers.ready("tick")["reason"] == "Scheduled"  # type: ignore[index]


def test_run_at_a_few_seconds_ahead_fires_exactly_once_and_leaves_spec_alone(
    triggers: Triggers, operators: Start
) -> None:
    run_at = format_instant((_now() + timedelta(seconds=4)).replace(microsecond=0))
    created = triggers.create(manifest("once", run_at=run_at))
    operators()

    wait_for(lambda: triggers.jobs("once"), timeout=30, message="the one-time Job")
    wait_for(
        lambda: triggers.status("once").get("completed"), timeout=15, message="completed in status"
    )
    # The run's success reaches the status through a later pass over the completed
    # trigger: a pass that would have started a second run, had it been going to.
    status = wait_for(
        lambda: (s := triggers.status("once")).get("lastSuccessfulTime") and s,
        timeout=30,
        message="lastSuccessfulTime in status",
    )

    assert triggers.scheduled_times("once") == [run_at]
    assert status.get("nextRunAt") is None
    assert triggers.ready("once")["reason"] == "Completed"  # type: ignore[index]
    after = triggers.get("once")
    assert after["spec"] == created["spec"]
    assert after["metadata"]["generation"] == created["metadata"]["generation"]


def test_run_at_in_the_past_fires_at_once(triggers: Triggers, operators: Start) -> None:
    run_at = format_instant((_now() - timedelta(minutes=5)).replace(microsecond=0))
    triggers.create(manifest("late", run_at=run_at))
    operators()

    wait_for(lambda: triggers.jobs("late"), timeout=30, message="the late one-time Job")
    assert triggers.scheduled_times("late") == [run_at]


def test_run_at_past_its_starting_deadline_is_missed_not_run(
    triggers: Triggers, operators: Start
) -> None:
    run_at = format_instant((_now() - timedelta(minutes=5)).replace(microsecond=0))
    triggers.create(manifest("too-late", run_at=run_at, startingDeadlineSeconds=60))
    operators()

    status = wait_for(
        lambda: (s := triggers.status("too-late")).get("completed") and s,
        timeout=30,
        message="completed in status",
    )
    assert status["missedRuns"] == 1
    assert status["lastMissedTime"] == run_at
    assert triggers.jobs("too-late") == []


def test_crash_between_job_create_and_status_patch_loses_and_duplicates_nothing(
    triggers: Triggers, operators: Start
) -> None:
    triggers.create(manifest("crashy", schedule="*/2 * * * * *", startingDeadlineSeconds=30))
    first = operators("crasher", crash_at="after-job-create", **SHORT_LEASE)

    assert first.wait_exit(timeout=30) == 86
    created = triggers.jobs("crashy")
    assert len(created) == 1
    crashed_time = created[0].metadata.annotations["triggers.dev/scheduled-for"]
    # The status patch never happened: the cursor still lags behind the Job.
    assert triggers.status("crashy").get("cursor") != crashed_time

    operators("survivor", **SHORT_LEASE)
    wait_for(
        lambda: (
            parse_instant(triggers.status("crashy").get("cursor") or "1970-01-01T00:00:00Z")
            > parse_instant(crashed_time)
        ),
        timeout=30,
        message="the cursor moved past the crashed time",
    )
    times = _assert_no_duplicates(triggers, "crashy")
    assert times.count(crashed_time) == 1
    # Started, not missed: the survivor does not count the crashed time as missed.
    assert triggers.status("crashy").get("lastMissedTime") != crashed_time


def test_crash_after_creating_a_one_time_job_never_loses_or_repeats_it(
    triggers: Triggers, operators: Start
) -> None:
    run_at = _crash_after_creating_a_one_time_job(triggers, operators, manifest("once-crashy"))
    assert triggers.scheduled_times("once-crashy") == [run_at]
    assert not triggers.status("once-crashy").get("completed")

    _complete_after_a_restart(triggers, operators, "once-crashy")
    assert triggers.scheduled_times("once-crashy") == [run_at]


def _crash_after_creating_a_one_time_job(
    triggers: Triggers, operators: Start, body: dict[str, Any]
) -> str:
    """Create `body` as a one-time trigger due in 3 s; an operator creates its Job, then dies."""
    run_at = format_instant((_now() + timedelta(seconds=3)).replace(microsecond=0))
    body["spec"]["runAt"] = run_at
    triggers.create(body)
    first = operators("crasher", crash_at="after-job-create", **SHORT_LEASE)
    assert first.wait_exit(timeout=30) == 86
    return run_at


def _complete_after_a_restart(triggers: Triggers, operators: Start, name: str) -> None:
    operators("survivor", **SHORT_LEASE)
    wait_for(
        lambda: triggers.status(name).get("completed"),
        timeout=30,
        message="the one-time trigger completed after the restart",
    )


@pytest.mark.parametrize("deleted_by", ["kubectl delete job", "ttlSecondsAfterFinished"])
def test_a_job_deleted_before_the_cursor_moved_is_never_run_again(
    triggers: Triggers, operators: Start, deleted_by: str
) -> None:
    ttl = {"ttlSecondsAfterFinished": 0} if deleted_by.startswith("ttl") else {}
    _crash_after_creating_a_one_time_job(triggers, operators, manifest("gone-early", job_spec=ttl))
    (job,) = triggers.jobs("gone-early")
    uid = job.metadata.uid
    if not ttl:
        triggers.batch.delete_namespaced_job(
            job.metadata.name, triggers.namespace, propagation_policy="Background"
        )
    # Deleted, and kept: the run-record finalizer holds it while the cursor lags behind.
    held = wait_for(
        lambda: [j for j in triggers.jobs("gone-early") if j.metadata.deletion_timestamp],
        timeout=30,
        message=f"the Job marked for deletion by {deleted_by}",
    )
    assert [j.metadata.uid for j in held] == [uid]
    assert not triggers.status("gone-early").get("completed")

    _complete_after_a_restart(triggers, operators, "gone-early")
    wait_for(
        lambda: triggers.jobs("gone-early") == [],
        timeout=30,
        message="the survivor released the deleted Job",
    )
    status = triggers.status("gone-early")
    assert status.get("missedRuns", 0) == 0
    assert status["lastRun"]["name"] == job.metadata.name  # started once, by the crasher


# catchUp policy -> how many of the times missed during the downtime it starts.
CATCH_UP_STARTS = {"Latest": 1, "All": 3, "None": 0}


def test_catch_up_after_downtime_starts_what_the_policy_says(
    triggers: Triggers, operators: Start
) -> None:
    # One trigger per policy, side by side: the same downtime for all three.
    names = {policy: f"catch-{policy.lower()}" for policy in CATCH_UP_STARTS}
    for policy, name in names.items():
        triggers.create(
            manifest(
                name,
                schedule="*/2 * * * * *",
                catchUp=policy,
                maxCatchUpRuns=3,
                successfulRunsHistoryLimit=100,
            )
        )
    first = operators("first")
    wait_for(
        lambda: all(triggers.status(name).get("cursor") for name in names.values()),
        timeout=30,
        message="first pass",
    )
    first.stop()
    stopped = {name: triggers.status(name) for name in names.values()}
    cursor_at_stop = {name: parse_instant(status["cursor"]) for name, status in stopped.items()}
    missed_before = {name: status.get("missedRuns", 0) for name, status in stopped.items()}

    # At least four due times pass while nobody schedules (more while the next one starts):
    # enough for All to start three and miss one.
    last_cursor = max(cursor_at_stop.values())
    wait_for(lambda: _now() > last_cursor + timedelta(seconds=8), timeout=20, message="downtime")

    second = operators("second")
    wait_for(
        lambda: all(
            triggers.status(name).get("missedRuns", 0) > missed_before[name]
            for name in names.values()
        ),
        timeout=30,
        message="the restarted operator handled the downtime",
    )
    second.stop()

    for policy, name in names.items():
        status = triggers.status(name)
        cursor = parse_instant(status["cursor"])
        # A stop between a Job's create and the status patch that follows it leaves that
        # Job past the cursor: its time is the next operator's to account for.
        new_jobs = [
            job
            for job in triggers.jobs(name)
            if cursor_at_stop[name]
            < parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"])
            <= cursor
        ]
        caught_up = [
            job.metadata.name
            for job in new_jobs
            if job.metadata.annotations["triggers.dev/run-kind"] == "catch-up"
        ]
        assert len(caught_up) == CATCH_UP_STARTS[policy], (policy, caught_up)
        # Every time after the stop is accounted for: a Job, or counted as missed.
        due = int((cursor - cursor_at_stop[name]).total_seconds()) // 2
        assert len(new_jobs) + status["missedRuns"] - missed_before[name] == due, policy
        _assert_no_duplicates(triggers, name)


def test_editing_the_schedule_never_fires_times_before_the_edit(
    triggers: Triggers, operators: Start
) -> None:
    triggers.create(manifest("edited", schedule="0 0 1 1 *"))
    operators()
    wait_for(lambda: triggers.status("edited").get("nextRunAt"), timeout=30, message="planned")
    assert triggers.jobs("edited") == []

    edit = _now()
    triggers.patch("edited", {"spec": {"schedule": "*/2 * * * * *"}})

    wait_for(lambda: triggers.jobs("edited"), timeout=30, message="a Job after the edit")
    times = [parse_instant(t) for t in triggers.scheduled_times("edited")]
    assert min(times) > edit - timedelta(seconds=1)
    assert triggers.status("edited").get("missedRuns", 0) == 0


def test_resume_from_suspend_does_not_fire_the_times_that_passed(
    triggers: Triggers, operators: Start
) -> None:
    triggers.create(manifest("paused", schedule="*/2 * * * * *", suspend=True))
    # A neighbour on the same schedule: its Jobs show the scheduler at work meanwhile.
    triggers.create(manifest("neighbour", schedule="*/2 * * * * *"))
    operators()
    wait_for(
        lambda: (triggers.ready("paused") or {}).get("reason") == "Suspended",
        timeout=30,
        message="Suspended",
    )
    suspended = _now()
    assert triggers.status("paused").get("nextRunAt") is None
    _wait_for_times_after(triggers, "neighbour", suspended, count=2)
    assert triggers.jobs("paused") == []

    resumed = _now()
    triggers.patch("paused", {"spec": {"suspend": False}})

    wait_for(lambda: triggers.jobs("paused"), timeout=30, message="a Job after resume")
    times = [parse_instant(t) for t in triggers.scheduled_times("paused")]
    assert min(times) > resumed - timedelta(seconds=1)
    assert triggers.status("paused").get("missedRuns", 0) == 0


def test_forbid_skips_times_while_a_run_is_active(triggers: Triggers, operators: Start) -> None:
    triggers.create(
        manifest(
            "forbid",
            schedule="*/2 * * * * *",
            concurrencyPolicy="Forbid",
            pod_annotations={"triggers.dev/simulate-duration": "60s"},
        )
    )
    operators()
    [first] = wait_for(lambda: triggers.jobs("forbid"), timeout=30, message="the first Job")
    first_time = parse_instant(first.metadata.annotations["triggers.dev/scheduled-for"])
    # The cursor moves past each time the scheduler handled, skipped ones included.
    _wait_for_cursor(triggers, "forbid", first_time + timedelta(seconds=6))

    jobs = triggers.jobs("forbid")
    assert len(jobs) == 1
    assert jobs[0].status.active == 1 or not jobs[0].status.completion_time
    assert len(triggers.status("forbid").get("active") or []) == 1


def test_replace_deletes_the_active_run_before_starting_the_next(
    triggers: Triggers, operators: Start
) -> None:
    triggers.create(
        manifest(
            "replace",
            schedule="*/3 * * * * *",
            concurrencyPolicy="Replace",
            pod_annotations={"triggers.dev/simulate-duration": "60s"},
        )
    )
    operators()
    first = wait_for(lambda: triggers.jobs("replace"), timeout=30, message="first Job")[0]

    def replaced() -> bool:
        names = {job.metadata.name for job in triggers.jobs("replace")}
        return first.metadata.name not in names and len(names) >= 1

    wait_for(replaced, timeout=30, message="the first Job replaced by a newer one")
    live = [job for job in triggers.jobs("replace") if not job.metadata.deletion_timestamp]
    assert len(live) == 1


def test_run_now_annotation_starts_one_run_per_value(triggers: Triggers, operators: Start) -> None:
    triggers.create(manifest("manual", schedule="0 0 1 1 *"))
    operators()
    wait_for(lambda: triggers.status("manual").get("nextRunAt"), timeout=30, message="planned")

    annotate = {"metadata": {"annotations": {"triggers.dev/run-now": "deploy-42"}}}
    triggers.patch("manual", annotate)
    wait_for(lambda: triggers.jobs("manual"), timeout=30, message="the manual run")
    triggers.patch("manual", {"metadata": {"labels": {"touched": "yes"}}})  # another event
    # The run's success reaches the status through later passes, which see the same value.
    wait_for(
        lambda: triggers.status("manual").get("lastSuccessfulTime"),
        timeout=30,
        message="the manual run's success in status",
    )
    assert len(triggers.jobs("manual")) == 1
    job = triggers.jobs("manual")[0]
    assert job.metadata.annotations["triggers.dev/run-now"] == "deploy-42"
    assert job.metadata.annotations["triggers.dev/run-kind"] == "manual"

    # The CLI sets the same annotation.
    subprocess.run(
        [
            *(sys.executable, "-m", "trigger_operator", "run-now", "manual"),
            *("-n", triggers.namespace, "--value", "deploy-43"),
        ],
        check=True,
        env={**os.environ, "KUBECONFIG": str(triggers.cluster.kubeconfig)},
        capture_output=True,
    )
    wait_for(lambda: len(triggers.jobs("manual")) == 2, timeout=30, message="a second value")
    values = [job.metadata.annotations["triggers.dev/run-now"] for job in triggers.jobs("manual")]
    assert sorted(values) == ["deploy-42", "deploy-43"]
    # The status is written after the Job is created: wait for it to name the second value.
    handled = wait_for(
        lambda: (
            (found := [r["value"] for r in triggers.status("manual").get("runNow") or []])
            and len(found) >= 2
            and found
        ),
        timeout=15,
        message="both values handled in status",
    )
    assert handled == ["deploy-42", "deploy-43"]


def test_history_limits_prune_finished_jobs_and_the_ledger_keeps_them(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    triggers.create(
        manifest(
            "pruned",
            schedule="*/2 * * * * *",
            successfulRunsHistoryLimit=2,
            failedRunsHistoryLimit=1,
        )
    )
    operators()
    wait_for(
        lambda: (
            len(triggers.scheduled_times("pruned")) >= 2
            and triggers.status("pruned").get("lastSuccessfulTime")
        ),
        timeout=30,
        message="some runs",
    )
    latest = max(parse_instant(t) for t in triggers.scheduled_times("pruned"))
    # Four more runs finish; only two may stay.
    wait_for(
        lambda: (
            parse_instant(triggers.status("pruned")["lastSuccessfulTime"])
            >= latest + timedelta(seconds=8)
        ),
        timeout=30,
        message="four more runs finished",
    )

    def finished_succeeded() -> list[Any]:
        return [
            job
            for job in triggers.jobs("pruned")
            if job.status.succeeded and not job.metadata.deletion_timestamp
        ]

    wait_for(lambda: len(finished_succeeded()) <= 2, timeout=15, message="pruned to two")

    # The ledger (the operator's SQLite file) keeps what the cluster no longer shows.
    store = LedgerStore(build_engine(f"sqlite+pysqlite:///{tmp_path / 'ledger.db'}"))
    try:

        def pruned_runs_recorded() -> list[Run] | None:
            query = RunQuery(namespace=triggers.namespace, trigger_name="pruned", limit=None)
            rows = store.runs(query)
            in_cluster = {job.metadata.name for job in triggers.jobs("pruned")}
            gone = [row for row in rows if row.job_name and row.job_name not in in_cluster]
            done = len(gone) >= 4 and all(row.status is LedgerStatus.SUCCEEDED for row in gone)
            return rows if done else None

        rows = wait_for(
            pruned_runs_recorded, timeout=15, message="the pruned runs in the ledger, succeeded"
        )
    finally:
        store.close()
    times = sorted(row.scheduled_for for row in rows)
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(times))
    missed = [row for row in rows if row.status is LedgerStatus.MISSED]
    assert triggers.status("pruned").get("missedRuns", 0) == len(missed)


# What is wrong -> (the spec fields that say so, the Ready reason, the field named).
INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "cron": ({"schedule": "61 * * * *"}, "InvalidSchedule", "spec.schedule"),
    "zone": (
        {"schedule": "*/5 * * * *", "timeZone": "Mars/Olympus_Mons"},
        "InvalidTimeZone",
        "spec.timeZone",
    ),
    "job-template": (
        {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
        "InvalidJobTemplate",
        "spec.jobTemplate",
    ),
}


def test_invalid_trigger_is_reported_on_status_and_events_and_never_runs(
    triggers: Triggers, operators: Start
) -> None:
    # One broken trigger per problem, and a healthy neighbour, under one operator.
    for problem, (spec, _, _) in INVALID.items():
        body = manifest(f"broken-{problem}", schedule="*/5 * * * *")
        body["spec"].update(spec)
        triggers.create(body)
    triggers.create(manifest("healthy", schedule="*/2 * * * * *"))
    operators()

    for problem, (_, reason, field) in INVALID.items():
        name = f"broken-{problem}"
        ready = wait_for(
            partial(_ready_with_status, triggers, name, "False"),
            timeout=30,
            message=f"Ready=False on {name}",
        )
        assert ready["reason"] == reason
        assert ready["message"].startswith(field)
        events = wait_for(
            partial(triggers.events, name), timeout=15, message=f"a Warning Event for {name}"
        )
        assert {(e.type, e.reason) for e in events} == {("Warning", reason)}
    reported = _now()
    # The healthy neighbour runs regardless, for two more periods: time enough for a storm.
    _wait_for_times_after(triggers, "healthy", reported, count=2)
    for problem in INVALID:
        assert triggers.jobs(f"broken-{problem}") == []
        assert len(triggers.events(f"broken-{problem}")) == 1, f"{problem}: reported once"

    fixed = {
        "schedule": "*/2 * * * * *",
        "timeZone": "UTC",
        "jobTemplate": manifest("x")["spec"]["jobTemplate"],
    }
    for problem in INVALID:
        triggers.patch(f"broken-{problem}", {"spec": fixed})
    for problem in INVALID:
        name = f"broken-{problem}"
        wait_for(partial(triggers.jobs, name), timeout=30, message=f"the fixed {name} runs")
        wait_for(
            partial(_ready_with_status, triggers, name, "True"),
            timeout=15,
            message=f"Ready=True once {name} is fixed",
        )
