"""Backfill in the pass: start a range's scheduled times that never ran, a few at a time.

A request is the `triggers.dev/backfill` annotation (`models.requests.BackfillRequest`),
an annotation rather than a resource of its own: it needs no new CRD, RBAC rules or
watch, it is guarded by the same admission rule as run-now (setting a `triggers.dev/`
annotation needs the right to create Jobs), it lives and dies with its trigger, and one
trigger has one backfill at a time — a new id replaces the last one, whose progress
status no longer shows.

On a new id the leader plans once (`schedule.backfill`): what the ledger holds of the
range (waiting for its queued records first) and the Jobs the trigger owns (listed
afresh) decide which times start and which are left, and why. The times to start are
kept in `status.backfill.pending`, so a new leader continues exactly where the last one
stopped, without planning again. Each pass then counts the backfill's finished runs and
starts the next pending times, at most `concurrency` of its runs active at once; under
Forbid, Replace or Queue one at a time and only while no other run is active, so a
backfill never makes a trigger overlap itself.

Each backfilled run is the Job of its scheduled time — the same name the scheduler
would give it — of kind `backfill`: a backfill racing the scheduler (a time that falls
due just now) meets AlreadyExists and counts the time as run. It is written to the
ledger under the time's own key, so a `missed` row becomes the run's row.

Progress shows in `status.backfill` and in a `Backfill` condition: True while it runs,
False with reason Complete (or InvalidBackfill, with one Warning Event) when it is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta

from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.ledger.records import KnownRun, LedgerStatus
from trigger_operator.ledger.writer import LedgerUnreadable
from trigger_operator.models.requests import (
    ANNOTATION_BACKFILL,
    BackfillRequest,
    RequestError,
    backfill_request,
)
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import ConcurrencyPolicy, TriggerSpec
from trigger_operator.models.status import (
    BackfillPhase,
    BackfillStatus,
    Condition,
    TriggerStatus,
)
from trigger_operator.schedule.backfill import (
    BackfillTooLarge,
    Known,
    LeftReason,
    plan_backfill,
)
from trigger_operator.schedule.calendars import NO_EXCLUSIONS, ExclusionSet
from trigger_operator.schedule.times import schedule_of
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.publish import StatusPublisher
from trigger_operator.scheduler.recorder import RunRecorder, ref_context
from trigger_operator.scheduler.runs import RunDispatcher
from trigger_operator.scheduler.status import active_runs

log = logging.getLogger(__name__)

BACKFILL = "Backfill"
INVALID_BACKFILL = "InvalidBackfill"
LEDGER_RETRY = timedelta(seconds=15)

_RAN = {
    LedgerStatus.PENDING,
    LedgerStatus.RUNNING,
    LedgerStatus.SUCCEEDED,
    LedgerStatus.FAILED,
    LedgerStatus.CANCELLED,
}


def known_times(
    ledger: list[KnownRun], jobs: dict[str, ObservedJob], *, start: datetime, end: datetime
) -> dict[datetime, Known]:
    """What the ledger and the Jobs say of each scheduled time in [start, end]."""
    known: dict[datetime, Known] = {}
    for row in ledger:
        if row.status in _RAN:
            known[row.scheduled_for] = Known.RAN
        elif row.status is LedgerStatus.SKIPPED:
            known[row.scheduled_for] = Known.SKIPPED
        else:
            known.setdefault(row.scheduled_for, Known.MISSED)
    for job in jobs.values():
        moment = job.scheduled_for
        if job.run_now is None and moment is not None and start <= moment <= end:
            known[moment] = Known.RAN
    return known


def progress_message(backfill: BackfillStatus) -> str:
    """The Backfill condition's message: the counts."""
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(backfill.left_by_reason.items()))
    return (
        f"{backfill.id}: started {backfill.started} of {backfill.planned} "
        f"({backfill.succeeded} succeeded, {backfill.failed} failed, "
        f"{backfill.cancelled} cancelled, {len(backfill.active)} active); "
        f"left {backfill.left} as they were" + (f" ({reasons})" if reasons else "")
    )


class Backfiller:
    """Plans a new backfill request and moves a running one on."""

    def __init__(
        self,
        *,
        runs: RunDispatcher,
        publisher: StatusPublisher,
        recorder: RunRecorder,
    ) -> None:
        self.runs = runs
        self.publisher = publisher
        self.recorder = recorder

    async def advance(
        self,
        entry: TriggerEntry,
        spec: TriggerSpec,
        status: TriggerStatus,
        jobs: dict[str, ObservedJob],
        *,
        now: datetime,
        exclusions: ExclusionSet = NO_EXCLUSIONS,
    ) -> tuple[TriggerStatus, datetime | None]:
        """The status with the backfill moved on, and when to look again (None: on events).

        `exclusions` are the trigger's calendars and `spec.exclude`: a time they exclude
        is left (Excluded), as the scheduler leaves it.
        """
        text = (entry.body["metadata"].get("annotations") or {}).get(ANNOTATION_BACKFILL)
        if not text:
            return status, None
        current = status.backfill
        try:
            request = backfill_request(text)
        except RequestError as error:
            return await self._invalid(entry, status, _id_of(text), str(error), now=now), None
        if current is None or current.id != request.id:
            planned = await self._plan(entry, spec, jobs, request, now=now, exclusions=exclusions)
            if planned is None:
                return status, now + LEDGER_RETRY
            if planned.phase is BackfillPhase.INVALID:
                return await self._invalid(
                    entry, status, request.id, planned.message, now=now
                ), None
            current = planned
        if current.phase is not BackfillPhase.RUNNING:
            return status, None
        current = await self._count_finished(entry, current, jobs)
        current = await self._start_next(entry, spec, current, jobs, now=now)
        if not current.pending and not current.active:
            current = current.model_copy(update={"phase": BackfillPhase.COMPLETE})
            log.info("backfill complete", extra={**ref_context(entry.ref), "backfill": current.id})
        current = current.model_copy(update={"message": progress_message(current)})
        return _with_backfill(status, current, now=now, generation=entry.generation), None

    async def _plan(
        self,
        entry: TriggerEntry,
        spec: TriggerSpec,
        jobs: dict[str, ObservedJob],
        request: BackfillRequest,
        *,
        now: datetime,
        exclusions: ExclusionSet,
    ) -> BackfillStatus | None:
        """The new backfill's status, Invalid with a message, or None to try later."""
        until = min(request.end, now)
        try:
            ledger = await asyncio.to_thread(
                self.recorder.ledger.known_runs, entry.uid, since=request.start, until=until
            )
        except LedgerUnreadable as error:
            log.warning(
                "backfill waits for the ledger",
                extra={**ref_context(entry.ref), "backfill": request.id, "error": str(error)},
            )
            return None
        await self.runs.refresh(entry, jobs)
        known = known_times(ledger, jobs, start=request.start, end=until)
        try:
            plan = plan_backfill(
                schedule_of(spec),
                start=request.start,
                end=request.end,
                now=now,
                known=known,
                max_runs=request.max_runs,
                excluded_by=exclusions.excluded_by if exclusions is not NO_EXCLUSIONS else None,
            )
        except BackfillTooLarge as error:
            return BackfillStatus(id=request.id, phase=BackfillPhase.INVALID, message=str(error))
        log.info(
            "backfill planned",
            extra={
                **ref_context(entry.ref),
                "backfill": request.id,
                "start": len(plan.start),
                "left": len(plan.left),
            },
        )
        return BackfillStatus.model_validate(
            {
                "id": request.id,
                "phase": BackfillPhase.RUNNING,
                "from": request.start,
                "to": request.end,
                "planned": len(plan.start),
                "left": len(plan.left),
                "leftByReason": dict(plan.left_by_reason),
                "concurrency": request.concurrency,
                "pending": list(plan.start),
            }
        )

    async def _count_finished(
        self, entry: TriggerEntry, backfill: BackfillStatus, jobs: dict[str, ObservedJob]
    ) -> BackfillStatus:
        """Move the backfill's runs that ended out of `active`, counting how they ended."""
        if any(name not in jobs for name in backfill.active):
            # Just created, and the watch has not brought it yet; or really gone.
            await self.runs.refresh(entry, jobs)
        active: list[str] = []
        counts = {"succeeded": backfill.succeeded, "failed": backfill.failed}
        cancelled = backfill.cancelled
        for name in backfill.active:
            job = jobs.get(name)
            if job is None or (job.deleting and job.result is RunResult.RUNNING):
                cancelled += 1
            elif job.result is RunResult.SUCCEEDED:
                counts["succeeded"] += 1
            elif job.result is RunResult.FAILED:
                counts["failed"] += 1
            else:
                active.append(name)
        return backfill.model_copy(update={**counts, "cancelled": cancelled, "active": active})

    async def _start_next(
        self,
        entry: TriggerEntry,
        spec: TriggerSpec,
        backfill: BackfillStatus,
        jobs: dict[str, ObservedJob],
        *,
        now: datetime,
    ) -> BackfillStatus:
        """Start pending times while the backfill's concurrency allows."""
        if not backfill.pending:
            return backfill
        alone = spec.concurrency_policy is not ConcurrencyPolicy.ALLOW
        if alone:
            await self.runs.refresh(entry, jobs)
        pending = list(backfill.pending)
        active = list(backfill.active)
        started, planned, left = backfill.started, backfill.planned, backfill.left
        by_reason = dict(backfill.left_by_reason)
        counts = {"succeeded": backfill.succeeded, "failed": backfill.failed}
        while pending:
            busy = len(active_runs(jobs.values())) if alone else len(active)
            if busy >= (1 if alone else backfill.concurrency):
                break
            moment = pending.pop(0)
            job = await self.runs.start(entry.ref, spec, moment, RunKind.BACKFILL, due=None)
            jobs[job.name] = job
            entry.jobs.setdefault(job.name, job)  # known before its watch event
            if job.kind is not RunKind.BACKFILL:
                # The scheduler started this time first (the race a shared name settles).
                planned, left = planned - 1, left + 1
                key = LeftReason.ALREADY_RAN.value
                by_reason[key] = by_reason.get(key, 0) + 1
                continue
            started += 1
            if job.result is RunResult.RUNNING:
                active.append(job.name)
            else:
                counts["succeeded" if job.result is RunResult.SUCCEEDED else "failed"] += 1
        return backfill.model_copy(
            update={
                **counts,
                "pending": pending,
                "active": active,
                "started": started,
                "planned": planned,
                "left": left,
                "left_by_reason": by_reason,
            }
        )

    async def _invalid(
        self,
        entry: TriggerEntry,
        status: TriggerStatus,
        ident: str,
        message: str,
        *,
        now: datetime,
    ) -> TriggerStatus:
        """Report an unusable request once: status, condition, one Warning Event."""
        current = status.backfill
        if (
            current is not None
            and current.phase is BackfillPhase.INVALID
            and current.id == ident
            and current.message == message
        ):
            return status
        await self.publisher.warn(entry, reason=INVALID_BACKFILL, message=message, now=now)
        backfill = BackfillStatus(id=ident, phase=BackfillPhase.INVALID, message=message)
        return _with_backfill(status, backfill, now=now, generation=entry.generation)


def _id_of(text: str) -> str:
    """The id of an unusable request, as far as it can be read (for its status)."""
    try:
        ident = json.loads(text).get("id")
    except (ValueError, AttributeError):
        return "invalid"
    return ident if isinstance(ident, str) and ident else "invalid"


def _with_backfill(
    status: TriggerStatus, backfill: BackfillStatus, *, now: datetime, generation: int
) -> TriggerStatus:
    running = backfill.phase is BackfillPhase.RUNNING
    reason = {
        BackfillPhase.RUNNING: "Running",
        BackfillPhase.COMPLETE: "Complete",
        BackfillPhase.INVALID: INVALID_BACKFILL,
    }[backfill.phase]
    value = "True" if running else "False"
    previous = next((c for c in status.conditions if c.type == BACKFILL), None)
    condition = Condition.model_validate(
        {
            "type": BACKFILL,
            "status": value,
            "reason": reason,
            "message": backfill.message,
            "lastTransitionTime": previous.last_transition_time
            if previous is not None and previous.status == value
            else now,
            "observedGeneration": generation,
        }
    )
    conditions = [*(c for c in status.conditions if c.type != BACKFILL), condition]
    return status.model_copy(update={"backfill": backfill, "conditions": conditions})
