"""Starting, replacing, pruning and releasing a trigger's Jobs.

A run's Job name is derived from (trigger uid, scheduled time) or the run-now value, so
creating it twice meets AlreadyExists: for a Job of this trigger that counts as done
(the run was started by this pass's predecessor, which stopped before moving the
cursor). A Job of that name owned by anything else is refused. Every create and delete
happens only while the gate lets this replica write.

Every Job carries the run-record finalizer (`jobs.builder.FINALIZER_RUN_RECORD`): when
someone deletes it (a TTL, a person, the history limits, the garbage collector after the
trigger), it stays, marked for deletion, until its time is behind the trigger's cursor
and the ledger has committed its run's final row, and only then is it released. So a
Job deleted between its create and the status patch that moves the cursor still tells
the next pass that its time has started, and a run's outcome is never lost with its Job
(a leader killed with the final row still queued leaves the Job to its successor).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import datetime
from enum import Enum
from typing import Any, Final

from pydantic import JsonValue

from trigger_operator.jobs.builder import (
    ANNOTATION_RUN_NOW,
    ANNOTATION_SCHEDULED_FOR,
    FINALIZER_RUN_RECORD,
    LABEL_TRIGGER_UID,
    TriggerRef,
    build_job,
)
from trigger_operator.jobs.state import ObservedJob, RunResult, observe_job, to_prune
from trigger_operator.kube.gateway import AlreadyExists, Forbidden, KubeError, NotFound
from trigger_operator.models.instants import format_instant, parse_api_time
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import TriggerStatus
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.gate import Gate, require_leader
from trigger_operator.scheduler.ports import SchedulerGateway
from trigger_operator.scheduler.recorder import RunRecorder, ref_context

log = logging.getLogger(__name__)


class Unset(Enum):
    """No payload given: the run gets the trigger's own."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET

CRASH_AFTER_JOB_CREATE = "after-job-create"
"""`crash_at` value: exit the process right after a Job create (fault-injection tests)."""


class RunDispatcher:
    """Creates, replaces and prunes Jobs of triggers."""

    def __init__(
        self,
        *,
        gateway: SchedulerGateway,
        gate: Gate,
        recorder: RunRecorder,
        crash_at: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.gate = gate
        self.recorder = recorder
        self.crash_at = crash_at

    async def start(
        self,
        ref: TriggerRef,
        spec: TriggerSpec,
        scheduled_for: datetime,
        kind: RunKind,
        *,
        due: datetime | None,
        run_now: str | None = None,
        payload: JsonValue | Unset = UNSET,
    ) -> ObservedJob:
        """Create the run's Job, or find it created already; return it as a run.

        `due` is when the run was due (its time plus jitter), for the lateness metric;
        None for a run-now. `payload` replaces the trigger's own for this run.
        """
        body = build_job(
            ref,
            spec.job_template.model_dump(mode="json", by_alias=True),
            scheduled_for=scheduled_for,
            kind=kind,
            writer=self.gate.writer,
            payload=spec.payload if isinstance(payload, Unset) else payload,
            run_now_value=run_now,
        )
        require_leader(self.gate)
        try:
            job = observe_job(await self.gateway.create_job(body))
            self.recorder.started(ref, job, due=due)
        except AlreadyExists:
            job = observe_job(await self._existing(ref, body["metadata"]["name"], scheduled_for))
            log.info("run already started", extra={**ref_context(ref), "job": job.name})
        if self.crash_at == CRASH_AFTER_JOB_CREATE:
            log.critical(
                "fault injection: exiting after the Job create",
                extra={**ref_context(ref), "job": job.name},
            )
            logging.shutdown()
            os._exit(86)
        # The Job names its run and the leader that created it (an earlier one, when it
        # already existed): one record makes the run's row, pending until it starts.
        self.recorder.job_seen(job)
        return job

    async def replace(
        self, ref: TriggerRef, active: list[ObservedJob], jobs: dict[str, ObservedJob]
    ) -> None:
        """Delete the `active` runs (concurrencyPolicy Replace); `jobs` shows them deleting.

        They are released with the pass's other deleted Jobs, once status is written.
        """
        for job in active:
            require_leader(self.gate)
            self.recorder.replacing(job)
            deleted = False
            try:
                deleted = await self.gateway.delete_job(ref.namespace, job.name, uid=job.uid)
            finally:
                self.recorder.replaced(ref, job, deleted=deleted)
            if deleted:
                jobs[job.name] = dataclasses.replace(job, deleting=True)
            else:
                jobs.pop(job.name, None)

    async def prune(
        self, entry: TriggerEntry, spec: TriggerSpec, jobs: dict[str, ObservedJob]
    ) -> None:
        """Delete finished Jobs beyond the history limits; the ledger keeps their runs."""
        doomed = to_prune(
            list(jobs.values()),
            keep_succeeded=spec.successful_runs_history_limit,
            keep_failed=spec.failed_runs_history_limit,
        )
        for job in doomed:
            if not self.gate.may_write():
                return
            try:
                await self.gateway.delete_job(entry.namespace, job.name, uid=job.uid)
            except KubeError as error:
                log.warning(
                    "could not prune a finished Job", extra={"job": job.name, "error": str(error)}
                )
                continue
            # Marked for deletion, it waits for its release (`release_handled`), which
            # needs its run's final row in the ledger.
            jobs[job.name] = dataclasses.replace(job, deleting=True)

    async def release_handled(
        self, entry: TriggerEntry, jobs: dict[str, ObservedJob], status: TriggerStatus
    ) -> bool:
        """Release the deleted Jobs whose runs status shows handled and the ledger final.

        Returns whether some wait for the ledger still (the pass is then repeated soon).
        An unfinished run's Job deleted along with its trigger (the garbage collector
        got there before the trigger's DELETED event reached us) is cancelled because
        the trigger was deleted, not because someone deleted the Job: one read tells.
        """
        current = (entry.body["metadata"].get("annotations") or {}).get(ANNOTATION_RUN_NOW)
        doomed = [
            j for j in jobs.values() if j.held and handled(j, status, current_run_now=current)
        ]
        running = [job for job in doomed if job.result is RunResult.RUNNING]
        if running:
            found = await self.gateway.read_trigger(entry.namespace, entry.name)
            if found is None or found["metadata"]["uid"] != entry.uid:
                for job in running:
                    self.recorder.orphaned(job)
        waiting = False
        for job in doomed:
            if FINALIZER_RUN_RECORD not in job.finalizers:
                continue
            if not self.recorder.settle(job) or not await self.release(job):
                waiting = True
        return waiting

    async def release(self, job: ObservedJob, *, exact: bool = True) -> bool:
        """Let a deleted Job go: remove the run-record finalizer (only while leading).

        `exact`: only the version of the Job its run's row was decided on goes, so a Job
        that changed since (its pod finished as someone deleted it) is refused, and the
        pass, repeated soon, records what it then shows first. False when refused.
        """
        if FINALIZER_RUN_RECORD not in job.finalizers or not self.gate.may_write():
            return True
        try:
            await self.gateway.release_job(
                job.namespace,
                job.name,
                uid=job.uid,
                finalizers=job.finalizers,
                finalizer=FINALIZER_RUN_RECORD,
                resource_version=str(job.resource_version) if exact else None,
            )
        except KubeError as error:
            # The Job changed meanwhile: its watch event, or the pass repeated, tries again.
            log.info("could not release a Job yet", extra={"job": job.name, "error": str(error)})
            return False
        return True

    async def refresh(self, entry: TriggerEntry, jobs: dict[str, ObservedJob]) -> None:
        """Update `jobs` with the trigger's Jobs as the API lists them now."""
        listed = await self.gateway.list_jobs(
            entry.namespace, label_selector=f"{LABEL_TRIGGER_UID}={entry.uid}"
        )
        for item in listed.items:
            state = observe_job(item)
            jobs[state.name] = state

    async def _existing(
        self, ref: TriggerRef, name: str, scheduled_for: datetime
    ) -> dict[str, Any]:
        job = await self.gateway.read_job(ref.namespace, name)
        if job is None:
            raise NotFound(f"Job {name} exists and then did not", status=404)
        owners = job["metadata"].get("ownerReferences") or []
        if not any(owner.get("uid") == ref.uid for owner in owners):
            raise Forbidden(f"Job {name} exists but belongs to another owner")
        annotations = job["metadata"].get("annotations") or {}
        same_time = parse_api_time(annotations.get(ANNOTATION_SCHEDULED_FOR)) == scheduled_for
        if not same_time and not annotations.get(ANNOTATION_RUN_NOW):
            log.warning(
                "existing Job has another scheduled time",
                extra={
                    **ref_context(ref),
                    "job": name,
                    "scheduled_for": format_instant(scheduled_for),
                },
            )
        return job


def handled(job: ObservedJob, status: TriggerStatus, *, current_run_now: str | None) -> bool:
    """Whether `status` shows the run of `job` handled, so its Job may go.

    A scheduled run is handled once the cursor, or the edit epoch (times at or before it
    never fire again), is at or past its time. A run-now run is handled once status
    remembers its value, or once the annotation holds another value (only the current
    value is ever started). A backfilled run is handled once status no longer lists its
    time among the backfill's pending times.
    """
    if job.run_now is not None:
        return status.handled_run_now(job.run_now) or job.run_now != current_run_now
    if status.queued is not None and job.scheduled_for == status.queued.scheduled_for:
        return False  # held by Queue: its Job, once created, is the evidence it started
    if job.kind is RunKind.BACKFILL and job.scheduled_for is not None:
        # Handled once the backfill's pending times in status no longer hold it.
        backfill = status.backfill
        if backfill is None or job.scheduled_for not in backfill.pending:
            return True
    marks = [t for t in (status.cursor, status.spec_epoch) if t is not None]
    return job.scheduled_for is not None and bool(marks) and job.scheduled_for <= max(marks)
