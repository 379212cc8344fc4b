"""Ledger records from what the cluster shows: Job bodies and trigger status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.scheduler.bodies import AT, TRIGGER, UID, condition, entry, job
from trigger_operator.jobs.builder import RunKind, manual_job_name
from trigger_operator.jobs.state import observe_job
from trigger_operator.ledger.records import LedgerStatus, manual_run_key, scheduled_run_key
from trigger_operator.ledger.records import RunKind as LedgerKind
from trigger_operator.models.status import TriggerStatus
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.evidence import job_record, run_ref, trigger_evidence


@pytest.mark.parametrize(
    ("status", "expected", "attempts"),
    [
        ({}, LedgerStatus.PENDING, 0),
        ({"startTime": "2026-11-26T02:30:01Z", "active": 1}, LedgerStatus.RUNNING, 1),
        ({"startTime": "2026-11-26T02:30:01Z", "failed": 1, "active": 1}, LedgerStatus.RUNNING, 2),
        (
            {
                "startTime": "2026-11-26T02:30:01Z",
                "completionTime": "2026-11-26T02:30:09Z",
                "succeeded": 1,
                "conditions": [condition("Complete", "2026-11-26T02:30:09Z")],
            },
            LedgerStatus.SUCCEEDED,
            1,
        ),
        (
            {
                "startTime": "2026-11-26T02:30:01Z",
                "failed": 3,
                "conditions": [
                    condition(
                        "Failed",
                        "2026-11-26T02:31:00Z",
                        reason="BackoffLimitExceeded",
                        message="Job has reached the specified backoff limit",
                    )
                ],
            },
            LedgerStatus.FAILED,
            3,
        ),
    ],
    ids=["created", "running", "retrying", "succeeded", "failed"],
)
def test_a_job_is_one_record_of_its_run_at_the_stage_it_has_reached(
    status: dict[str, Any], expected: LedgerStatus, attempts: int
) -> None:
    body = job(status=status)
    record = job_record(observe_job(body))

    assert record is not None
    assert record.ref.key == scheduled_run_key(UID, AT)
    assert record.ref.kind is LedgerKind.SCHEDULED
    assert (record.ref.namespace, record.ref.trigger_name) == ("team-a", "nightly")
    assert record.ref.job_name == body["metadata"]["name"]
    assert record.job_uid == body["metadata"]["uid"]
    assert record.status is expected
    assert record.attempts == attempts
    assert (record.leader_identity, record.leader_revision) == ("pod-a", 3)
    if status.get("startTime"):
        assert record.started_at == AT + timedelta(seconds=1)
    if expected is LedgerStatus.FAILED:
        assert record.reason == "BackoffLimitExceeded"
        assert record.message == "Job has reached the specified backoff limit"
        assert record.finished_at == AT + timedelta(minutes=1)
    else:
        assert record.reason is None


def test_catch_up_and_manual_jobs_keep_their_kind_and_key() -> None:
    catch_up = run_ref(observe_job(job(kind=RunKind.CATCH_UP)))
    manual = run_ref(observe_job(job(kind=RunKind.MANUAL, run_now="deploy-42")))

    assert catch_up is not None and catch_up.kind is LedgerKind.CATCH_UP
    assert catch_up.key == scheduled_run_key(UID, AT)
    assert manual is not None and manual.kind is LedgerKind.MANUAL
    assert manual.key == manual_run_key(UID, "deploy-42")
    assert manual.scheduled_for == AT  # when it was asked for


def test_a_job_that_names_no_run_gives_no_record() -> None:
    body = job()
    del body["metadata"]["annotations"]["triggers.dev/scheduled-for"]
    assert job_record(observe_job(body)) is None


def test_trigger_evidence_has_every_job_plus_the_pruned_last_run_and_last_missed_time() -> None:
    pruned_at, missed_at = AT - timedelta(days=1), AT - timedelta(days=2)
    status = {
        "lastRun": {
            "name": "nightly-pruned",
            "scheduledFor": "2026-11-25T02:30:00Z",
            "result": "Failed",
        },
        "lastMissedTime": "2026-11-24T02:30:00Z",
        "missedRuns": 4,
    }
    found = entry(job(status={"startTime": "2026-11-26T02:30:01Z"}), status=status)

    records = {r.ref.key: r for r in trigger_evidence(found, _status(found))}

    assert records[scheduled_run_key(UID, AT)].status is LedgerStatus.RUNNING
    last = records[scheduled_run_key(UID, pruned_at)]
    assert (last.status, last.ref.job_name) == (LedgerStatus.FAILED, "nightly-pruned")
    missed = records[scheduled_run_key(UID, missed_at)]
    assert (missed.status, missed.reason) == (LedgerStatus.MISSED, "Missed")
    assert len(records) == 3  # the three earlier missed times cannot be told apart


def test_a_last_run_that_was_manual_is_keyed_by_its_run_now_value() -> None:
    name = manual_job_name(TRIGGER, "deploy-42")
    status = {
        "lastRun": {"name": name, "scheduledFor": "2026-11-26T02:30:00Z", "result": "Succeeded"},
        "runNow": [{"value": "deploy-42", "handledAt": "2026-11-26T02:30:00Z"}],
    }
    found = entry(status=status)

    [record] = trigger_evidence(found, _status(found))

    assert record.ref.key == manual_run_key(UID, "deploy-42")
    assert record.ref.kind is LedgerKind.MANUAL
    assert record.status is LedgerStatus.SUCCEEDED


def test_a_last_run_whose_job_is_still_there_is_told_by_the_job_alone() -> None:
    body = job(status={"startTime": "2026-11-26T02:30:01Z"})
    status = {
        "lastRun": {
            "name": body["metadata"]["name"],
            "scheduledFor": "2026-11-26T02:30:00Z",
            "result": "Running",
        }
    }
    found = entry(body, status=status)

    [record] = trigger_evidence(found, _status(found))

    assert record.status is LedgerStatus.RUNNING


def test_a_last_missed_time_that_has_a_job_is_not_called_missed() -> None:
    # A leader created the Job and crashed before its status patch; the next one counted
    # the time as missed. The Job is what happened.
    found = entry(
        job(status={"startTime": "2026-11-26T02:30:01Z"}),
        status={"lastMissedTime": "2026-11-26T02:30:00Z", "missedRuns": 1},
    )

    [record] = trigger_evidence(found, _status(found))

    assert record.status is LedgerStatus.RUNNING


def _status(found: TriggerEntry) -> TriggerStatus:
    return TriggerStatus.model_validate(found.body["status"])
