"""What the world says about runs, as ledger records.

A Job carries its run's whole identity (trigger uid and name, scheduled time, kind,
run-now value, the leader that created it) and its state, so one Job is enough to write
its run's ledger row. The scheduler reports every Job watch event through `job_record`,
and reconciles the ledger with `trigger_evidence` (every Job the trigger still owns, and
what its status remembers) when it starts leading and when the database comes back after
an outage: records the writer had to drop are written again from the world.

What the world cannot tell, and so a dropped record cannot be rebuilt:
- a run whose Job is gone (pruned by the history limits, deleted with its trigger) and
  that is not the trigger's `status.lastRun`;
- `skipped` (Forbid, Excluded) and `missed` times beyond the newest
  NOT_STARTED_HISTORY_LIMIT that status remembers (`status.notStarted`, written with the
  cursor that passes them); a longer outage's missed times are only counted
  (`status.missedRuns`);
- `cancelled` runs (the Job is deleted);
- the kind (`scheduled` or `catch-up`) of a run known only from `status.lastRun`; it is
  recorded as `scheduled`.
Every record is an idempotent upsert that only moves a run forward, so evidence never
undoes what the ledger already knows better.
"""

from __future__ import annotations

from trigger_operator.jobs.builder import RunKind, TriggerRef, manual_job_name
from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.ledger.records import LedgerStatus, RunRecord, RunRef, attempts_for
from trigger_operator.models.status import NotStarted, TriggerStatus
from trigger_operator.scheduler.cache import TriggerEntry

MISSED_REASON = "Missed"
MISSED_MESSAGE = "not started: operator down past the deadline, or left out by catchUp"
FORBID_REASON = "ConcurrencyForbid"
FORBID_MESSAGE = "not started: an earlier run was active (concurrencyPolicy Forbid)"
EXCLUDED_REASON = "Excluded"
"""A time a calendar (or spec.exclude) kept from running."""


def excluded_message(source: str | None) -> str:
    """The ledger message of an excluded time: which calendar excluded it."""
    return f"excluded by {source or 'a calendar'}"


_FINAL = {
    RunResult.SUCCEEDED: LedgerStatus.SUCCEEDED,
    RunResult.FAILED: LedgerStatus.FAILED,
    RunResult.CANCELLED: LedgerStatus.CANCELLED,
}


def run_ref(job: ObservedJob) -> RunRef | None:
    """The ledger identity of the run `job` belongs to; None for a Job that is not a run."""
    if job.scheduled_for is None or not job.trigger_uid or not job.namespace:
        return None
    if not job.trigger_name:
        return None
    if job.run_now:
        return RunRef.manual(
            namespace=job.namespace,
            trigger_name=job.trigger_name,
            trigger_uid=job.trigger_uid,
            run_now_value=job.run_now,
            requested_at=job.scheduled_for,
            job_name=job.name,
        )
    kind = job.kind if job.kind in (RunKind.CATCH_UP, RunKind.BACKFILL) else RunKind.SCHEDULED
    return RunRef.scheduled(
        namespace=job.namespace,
        trigger_name=job.trigger_name,
        trigger_uid=job.trigger_uid,
        scheduled_for=job.scheduled_for,
        kind=kind,
        job_name=job.name,
    )


def job_status(job: ObservedJob) -> LedgerStatus:
    """Where the run stands: pending until the Job controller starts it, then running."""
    if job.result is RunResult.SUCCEEDED:
        return LedgerStatus.SUCCEEDED
    if job.result is RunResult.FAILED:
        return LedgerStatus.FAILED
    return LedgerStatus.RUNNING if job.started is not None else LedgerStatus.PENDING


def job_record(job: ObservedJob) -> RunRecord | None:
    """Everything `job` says about its run, as one ledger record."""
    ref = run_ref(job)
    if ref is None:
        return None
    status = job_status(job)
    failed = status is LedgerStatus.FAILED
    return RunRecord(
        ref=ref,
        status=status,
        job_uid=job.uid or None,
        reason=job.reason if failed else None,
        message=job.message if failed else None,
        started_at=job.started,
        finished_at=job.finished,
        attempts=attempts_for(status, failed_pods=job.failed_pods),
        leader_identity=job.leader,
        leader_revision=job.revision,
        payload=job.payload,
    )


def trigger_evidence(entry: TriggerEntry, status: TriggerStatus) -> list[RunRecord]:
    """The runs of one trigger as the cluster shows them: its Jobs, then its status."""
    records = [record for job in entry.jobs.values() if (record := job_record(job)) is not None]
    trigger = TriggerRef(namespace=entry.namespace, name=entry.name, uid=entry.uid)
    last = status.last_run
    if last is not None and last.result in _FINAL and last.name not in entry.jobs:
        records.append(RunRecord(ref=_last_run_ref(trigger, status), status=_FINAL[last.result]))
    ran = {job.scheduled_for for job in entry.jobs.values() if not job.run_now}
    passed = {time.scheduled_for: time for time in status.not_started}
    missed = status.last_missed_time
    if missed is not None and missed not in passed:
        passed[missed] = NotStarted(scheduled_for=missed, reason=MISSED_REASON)
    for scheduled_for, time in sorted(passed.items()):
        if scheduled_for not in ran:
            records.append(_not_started_record(trigger, time))
    return records


def _not_started_record(trigger: TriggerRef, record: NotStarted) -> RunRecord:
    """The ledger row of a time status remembers passing without a run."""
    ref = RunRef.scheduled(
        namespace=trigger.namespace,
        trigger_name=trigger.name,
        trigger_uid=trigger.uid,
        scheduled_for=record.scheduled_for,
        kind=RunKind(record.kind),
    )
    if record.reason == MISSED_REASON:
        return RunRecord(
            ref=ref, status=LedgerStatus.MISSED, reason=MISSED_REASON, message=MISSED_MESSAGE
        )
    message = FORBID_MESSAGE if record.reason == FORBID_REASON else None
    if record.reason == EXCLUDED_REASON:
        message = excluded_message(record.excluded_by)
    return RunRecord(ref=ref, status=LedgerStatus.SKIPPED, reason=record.reason, message=message)


def _last_run_ref(trigger: TriggerRef, status: TriggerStatus) -> RunRef:
    last = status.last_run
    assert last is not None
    for handled in status.run_now:
        if manual_job_name(trigger, handled.value) == last.name:
            return RunRef.manual(
                namespace=trigger.namespace,
                trigger_name=trigger.name,
                trigger_uid=trigger.uid,
                run_now_value=handled.value,
                requested_at=last.scheduled_for,
                job_name=last.name,
            )
    return RunRef.scheduled(
        namespace=trigger.namespace,
        trigger_name=trigger.name,
        trigger_uid=trigger.uid,
        scheduled_for=last.scheduled_for,
        job_name=last.name,
    )
