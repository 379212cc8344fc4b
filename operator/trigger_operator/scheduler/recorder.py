"""Every ledger row and run metric the scheduler produces, in one place.

The rule that goes with them: only the replica that leads writes the ledger (a standby
sees the same Job events; one writer keeps rows from flapping between replicas' views).
A standby keeps what it would have written (the newest UNWRITTEN_LIMIT records), and
writes it when it becomes leader: a run that finished, and whose Job went, while the
leader could not write (it crashed with the record still queued, or was cut off) still
gets its final row from the successor.
Run counters by result and the triggers-by-state gauge are this replica's own view and
are kept on every replica.

Ledger writes go to the `LedgerWriter` queue and return at once: a slow or absent
database never delays dispatch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import TriggerRef
from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.ledger.records import LedgerStatus, RunRecord, RunRef
from trigger_operator.ledger.writer import LedgerWriter
from trigger_operator.metrics import Metrics, RunOutcome, TriggerState
from trigger_operator.models.instants import format_instant
from trigger_operator.models.runs import RunKind
from trigger_operator.models.status import TriggerStatus
from trigger_operator.schedule.planner import Plan
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.evidence import (
    EXCLUDED_REASON,
    FORBID_REASON,
    MISSED_MESSAGE,
    MISSED_REASON,
    excluded_message,
    job_record,
    job_status,
    run_ref,
    trigger_evidence,
)
from trigger_operator.scheduler.gate import Gate, pass_term
from trigger_operator.scheduler.queue import SUPERSEDED_REASON
from trigger_operator.scheduler.status import status_of

log = logging.getLogger(__name__)

UNWRITTEN_LIMIT = 10_000
"""How many records a standby keeps for when it leads (the oldest go first)."""

RECONCILE_BATCH = 256
"""Triggers a reconciliation does between turns of the event loop."""

SETTLE_ASK_AGAIN = 30.0
"""Seconds after which a deleted Job's final row, still not committed, is queued again."""

_FINISHED = {RunResult.SUCCEEDED: RunOutcome.SUCCEEDED, RunResult.FAILED: RunOutcome.FAILED}


class RunRecorder:
    """Hands runs to the ledger and counts them in the metrics."""

    def __init__(self, *, ledger: LedgerWriter, metrics: Metrics, gate: Gate, clock: Clock) -> None:
        self.ledger = ledger
        self.metrics = metrics
        self.gate = gate
        self.clock = clock
        # Triggers whose runs were reconciled with the ledger since leadership or the
        # database last came back (see `reconcile`).
        self._synced: set[str] = set()
        # Jobs whose end is already accounted for (deleted for concurrencyPolicy Replace,
        # or cancelled with their trigger), with the record that says so once made: their
        # DELETED event adds nothing, and must not record them again as deleted by
        # someone else.
        self._accounted: dict[str, RunRecord | None] = {}
        # Deleted Jobs waiting for their final row (`settle`): when it was last queued.
        self._settling: dict[str, float] = {}
        self._states: dict[str, TriggerState] = {}
        self._unwritten: deque[RunRecord] = deque(maxlen=UNWRITTEN_LIMIT)

    # -- Jobs, as the watch reports them ---------------------------------------------------

    def job_changed(self, job: ObservedJob, previous: ObservedJob | None) -> None:
        """A Job was seen for the first time, started, retried or finished.

        Jobs this process did not create (before a restart, by an earlier leader) count
        the same: the Job alone says which run it is.
        """
        if (previous is None or previous.result is not job.result) and job.result in _FINISHED:
            self.metrics.runs.labels(result=_FINISHED[job.result]).inc()
        self.job_seen(job)

    def job_seen(self, job: ObservedJob) -> None:
        """Write what `job` says about its run (pending until it starts)."""
        record = job_record(job)
        if record is not None:
            self._write(record)

    def job_deleted(self, job: ObservedJob) -> None:
        """A Job is gone. Finished runs keep their rows; an unfinished one was stopped."""
        self._settling.pop(job.uid, None)
        if job.uid in self._accounted:
            self._accounted.pop(job.uid, None)
            return
        if job.result is RunResult.RUNNING:
            self._deleted_unfinished(job)
            self._accounted.pop(job.uid, None)  # gone: nothing more will be said of it

    def trigger_deleted(self, entry: TriggerEntry) -> None:
        """The trigger is gone, and its active runs with it (garbage collector)."""
        self.set_state(entry.uid, None)
        self._synced.discard(entry.uid)
        for job in entry.jobs.values():
            self.orphaned(job)

    def orphaned(self, job: ObservedJob) -> None:
        """`job`'s trigger is gone: an unfinished run goes with it."""
        if job.result is RunResult.RUNNING:
            self._cancelled(job, "TriggerDeleted", "the trigger was deleted, and its Jobs with it")

    # -- decisions of the pass -----------------------------------------------------------------

    def started(self, ref: TriggerRef, job: ObservedJob, *, due: datetime | None) -> None:
        """This replica created `job`; `due` is when it was due (None for run-now)."""
        log.info(
            "run started",
            extra={**_job_context(ref, job), "term": self.gate.term, "pass_term": pass_term()},
        )
        self.metrics.runs.labels(result=RunOutcome.STARTED).inc()
        lateness = 0.0 if due is None else max(0.0, (self.clock.now() - due).total_seconds())
        self.metrics.dispatch_lateness.observe(lateness)

    def refused(self, ref: TriggerRef) -> None:
        """The API server refused to create a run's Job; the time is tried again later."""
        self.metrics.runs.labels(result=RunOutcome.REFUSED).inc()
        log.warning("the API server refused a Job create", extra=ref_context(ref))

    def replacing(self, job: ObservedJob) -> None:
        """`job` is about to be deleted for concurrencyPolicy Replace."""
        self._accounted[job.uid] = None

    def replaced(self, ref: TriggerRef, job: ObservedJob, *, deleted: bool) -> None:
        """The delete for Replace is done; `deleted` is False when the Job was gone already."""
        if not deleted:
            self._accounted.pop(job.uid, None)
            return
        self.metrics.runs.labels(result=RunOutcome.CANCELLED).inc()
        log.info("replaced an active run", extra=_job_context(ref, job))
        self._cancelled(job, "Replaced", "concurrencyPolicy Replace: a newer run started")

    def skipped(
        self, ref: TriggerRef, scheduled_for: datetime, kind: RunKind, active: list[ObservedJob]
    ) -> None:
        """concurrencyPolicy Forbid left out `scheduled_for` while `active` run."""
        self.metrics.runs.labels(result=RunOutcome.SKIPPED).inc()
        log.info(
            "run skipped: an earlier run is active (Forbid)",
            extra={**ref_context(ref), "scheduled_for": format_instant(scheduled_for)},
        )
        if self.gate.may_write():
            writer = self.gate.writer
            self.ledger.record_skipped(
                _unstarted_ref(ref, scheduled_for, kind),
                reason=FORBID_REASON,
                message=f"active: {', '.join(job.name for job in active)}",
                leader_identity=writer.identity,
                leader_revision=writer.revision,
            )

    def excluded(self, ref: TriggerRef, outcome: Plan) -> None:
        """The plan's excluded times: skipped, reason Excluded, naming the calendar."""
        if not outcome.excluded:
            return
        self.metrics.runs.labels(result=RunOutcome.SKIPPED).inc(len(outcome.excluded))
        log.info(
            "scheduled times excluded by a calendar",
            extra={**ref_context(ref), "excluded": len(outcome.excluded)},
        )
        if not self.gate.may_write():
            return
        writer = self.gate.writer
        for scheduled_for, source in outcome.excluded:
            self.ledger.record_skipped(
                _unstarted_ref(ref, scheduled_for, RunKind.SCHEDULED),
                reason=EXCLUDED_REASON,
                message=excluded_message(source),
                leader_identity=writer.identity,
                leader_revision=writer.revision,
            )

    def superseded(
        self, ref: TriggerRef, scheduled_for: datetime, kind: RunKind, *, by: datetime
    ) -> None:
        """concurrencyPolicy Queue dropped its held time `scheduled_for` for the newer `by`."""
        self.metrics.runs.labels(result=RunOutcome.SKIPPED).inc()
        log.info(
            "held time superseded by a newer one (Queue)",
            extra={**ref_context(ref), "scheduled_for": format_instant(scheduled_for)},
        )
        if self.gate.may_write():
            writer = self.gate.writer
            self.ledger.record_skipped(
                _unstarted_ref(ref, scheduled_for, kind),
                reason=SUPERSEDED_REASON,
                message=f"concurrencyPolicy Queue: {format_instant(by)} is held instead",
                leader_identity=writer.identity,
                leader_revision=writer.revision,
            )

    def missed(self, ref: TriggerRef, outcome: Plan) -> None:
        """The plan's missed times: counted, and the listed ones written; then its excluded
        times (`excluded`)."""
        self.excluded(ref, outcome)
        if not outcome.missed_count:
            return
        self.metrics.missed_runs.inc(outcome.missed_count)
        self.metrics.runs.labels(result=RunOutcome.MISSED).inc(outcome.missed_count)
        log.warning(
            "scheduled times missed", extra={**ref_context(ref), "missed": outcome.missed_count}
        )
        if not self.gate.may_write():
            return
        writer = self.gate.writer
        for scheduled_for in outcome.missed:
            self.ledger.record_missed(
                _unstarted_ref(ref, scheduled_for, RunKind.SCHEDULED),
                reason=MISSED_REASON,
                message=MISSED_MESSAGE,
                leader_identity=writer.identity,
                leader_revision=writer.revision,
            )

    def settle(self, job: ObservedJob) -> bool:
        """Whether the ledger holds the final row of `job`'s run, so that its Job may go.

        Until it does, the deleted Job stays (the run-record finalizer) and the row is
        queued again on each call: the Job's own outcome when it finished, the
        cancellation already decided for it (Replace, its trigger gone), or else a
        cancellation because someone deleted it before it finished. A Job that names no
        run may go at once.
        """
        ref = run_ref(job)
        # A Job that finished after its run was recorded cancelled (deleted by hand as
        # its pod completed) did run to the end: it goes once that outcome is committed.
        outcome = job_status(job) if job.result in _FINISHED else None
        if ref is None or self.ledger.settled(ref.key, outcome):
            self._settling.pop(job.uid, None)
            return True
        if not self.gate.may_write():
            return False
        now = self.clock.monotonic()
        asked = self._settling.get(job.uid)
        decided = self._accounted.get(job.uid)
        if job.result not in _FINISHED and job.uid not in self._accounted:
            self._deleted_unfinished(job)  # nobody has said yet how this run ended
        elif asked is None or now - asked >= SETTLE_ASK_AGAIN:
            # The first time, or queued before and still not committed (dropped from a
            # full queue, a database away): once more, as an idempotent upsert.
            if job.result in _FINISHED:
                self.job_seen(job)
            elif decided is not None and asked is not None:
                self.ledger.record(decided)
        else:
            return False
        self._settling[job.uid] = now
        return False

    def suspended_after_failures(self, ref: TriggerRef) -> None:
        """spec.failurePolicy suspended the trigger (once per suspension)."""
        self.metrics.failure_suspensions.inc()
        log.warning("suspended after repeated failed runs", extra=ref_context(ref))

    def set_state(self, uid: str, state: TriggerState | None) -> None:
        """Keep the triggers-by-state gauge: one trigger counts in one state."""
        previous = self._states.pop(uid, None)
        if previous is not None:
            self.metrics.triggers.labels(state=previous).dec()
        if state is not None:
            self._states[uid] = state
            self.metrics.triggers.labels(state=state).inc()

    # -- reconciliation with the cluster -------------------------------------------------------

    async def reconcile(
        self,
        entries: Iterable[TriggerEntry],
        *,
        after_each: Callable[[TriggerEntry], None] | None = None,
    ) -> None:
        """Write again what the cluster shows about the runs of `entries`.

        Called when this replica starts leading and when the database is back after an
        outage: Job events seen while not leading, and records the writer dropped, are
        rebuilt from the Jobs and the trigger status (see `evidence`). Triggers that reach
        the cache later are reconciled on their first pass (`sync_once`). A few hundred
        triggers at a time, so that passes run in between; `after_each` is told of every
        trigger done (the scheduler lets its decoded body go).
        """
        self._synced.clear()
        if not self.gate.may_write():
            return
        kept = self.ledger.reconcile(self._unwritten)
        self._unwritten.clear()
        triggers = records = 0
        for entry in entries:
            if entry.deleting:
                continue
            triggers += 1
            records += self.sync_once(entry, status_of(entry.body))
            if after_each is not None:
                after_each(entry)
            if triggers % RECONCILE_BATCH == 0:
                await asyncio.sleep(0)
                if not self.gate.may_write():
                    return
        log.info(
            "ledger reconciled with the cluster",
            extra={"triggers": triggers, "records": records, "seen_while_standing_by": kept},
        )

    def sync_once(self, entry: TriggerEntry, status: TriggerStatus) -> int:
        """Reconcile one trigger's runs, unless done since the last `reconcile`."""
        if entry.uid not in self._synced:
            return self._sync(entry, status)
        return 0

    def _sync(self, entry: TriggerEntry, status: TriggerStatus) -> int:
        if not self.gate.may_write():
            return 0
        self._synced.add(entry.uid)
        return self.ledger.reconcile(trigger_evidence(entry, status))

    def _deleted_unfinished(self, job: ObservedJob) -> None:
        self._cancelled(job, "JobDeleted", "the Job was deleted before it finished")

    def _cancelled(self, job: ObservedJob, reason: str, message: str) -> None:
        ref = run_ref(job)
        record = None
        if ref is not None:
            record = RunRecord(
                ref=ref,
                status=LedgerStatus.CANCELLED,
                reason=reason,
                message=message,
                finished_at=self.clock.now(),
            )
            self._write(record)
        self._accounted[job.uid] = record

    def _write(self, record: RunRecord) -> None:
        """To the ledger while leading; else kept for when this replica leads."""
        if self.gate.may_write():
            self.ledger.record(record)
        else:
            self._unwritten.append(record)


def ref_context(ref: TriggerRef) -> dict[str, str]:
    """The log context that names a trigger."""
    return {"namespace": ref.namespace, "trigger": ref.name, "uid": ref.uid}


def _job_context(ref: TriggerRef, job: ObservedJob) -> dict[str, str | int | None]:
    return {
        **ref_context(ref),
        "scheduled_for": format_instant(job.scheduled_for) if job.scheduled_for else None,
        "job": job.name,
        "revision": job.revision,
    }


def _unstarted_ref(ref: TriggerRef, scheduled_for: datetime, kind: RunKind) -> RunRef:
    """The ledger identity of a scheduled time that has no Job (skipped, missed)."""
    return RunRef.scheduled(
        namespace=ref.namespace,
        trigger_name=ref.name,
        trigger_uid=ref.uid,
        scheduled_for=scheduled_for,
        kind=kind,
    )
