"""One trigger, one pass: the numbered steps that turn due times into Jobs.

1. Load the spec; an invalid one (schedule, zone, Job template) is reported on the
   trigger (Ready=False, a Warning Event once per problem) and never runs.
2. Rebuild what status can from the world: the Jobs the trigger owns.
3. Plan: which scheduled times to start now and which are missed (`schedule.plan`).
4. Apply concurrencyPolicy, then create each Job. Its name is derived from (uid, time),
   so AlreadyExists for our own Job means "already done": the run is started first and
   the cursor advanced second, and a crash between the two loses nothing.
5. Start a run for a new value of the run-now annotation.
6. Patch status with a resourceVersion precondition: a stale writer gets 409 and
   re-reads instead of moving the cursor back.
7. Prune finished Jobs beyond the history limits; hand every outcome to the ledger,
   off the hot path.

Returns when the trigger next needs a pass (its next due time), or None.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import (
    ANNOTATION_RUN_NOW,
    ANNOTATION_SCHEDULED_FOR,
    LABEL_TRIGGER_UID,
    RunKind,
    TriggerRef,
    build_job,
    scheduled_job_name,
)
from trigger_operator.jobs.state import RunResult, RunState, parse_time, run_state, to_prune
from trigger_operator.kube.gateway import (
    AlreadyExists,
    ApiUnavailable,
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    KubeGateway,
    NotFound,
)
from trigger_operator.ledger.records import RunRef
from trigger_operator.ledger.writer import LedgerWriter
from trigger_operator.metrics import Metrics
from trigger_operator.models.instants import format_instant
from trigger_operator.models.spec import ConcurrencyPolicy, TriggerSpec
from trigger_operator.models.status import ActiveRun, Condition, LastRun, TriggerStatus
from trigger_operator.schedule.errors import ScheduleError
from trigger_operator.schedule.jitter import jitter_for
from trigger_operator.schedule.planner import CATCH_UP_NONE_GRACE, Plan, plan
from trigger_operator.schedule.progress import progress_from_status
from trigger_operator.schedule.times import schedule_of
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.evidence import (
    MISSED_MESSAGE,
    MISSED_REASON,
    job_record,
    run_ref,
    trigger_evidence,
)
from trigger_operator.scheduler.gate import Gate

log = logging.getLogger(__name__)

CRASH_AFTER_JOB_CREATE = "after-job-create"
# A refusal right after install is often RBAC not yet propagated; a lasting one is a
# namespace the operator may not write. Look again soon, then ever more rarely.
FORBIDDEN_FIRST_RETRY = timedelta(seconds=10)
FORBIDDEN_MAX_RETRY = timedelta(minutes=5)


class NotLeading(Exception):
    """The gate closed mid-pass: stop writing at once (fencing)."""


@dataclass(frozen=True)
class Problem:
    """Why a trigger cannot run, as its Ready condition shows it."""

    reason: str
    message: str


class Reconciler:
    """Carries out one pass over one trigger."""

    retry_delay = timedelta(seconds=5)

    def __init__(
        self,
        *,
        gateway: KubeGateway,
        gate: Gate,
        clock: Clock,
        metrics: Metrics,
        ledger: LedgerWriter | None = None,
        upcoming_count: int = 3,
        crash_at: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.gate = gate
        self.clock = clock
        self.metrics = metrics
        self.ledger = ledger
        self.upcoming_count = upcoming_count
        self.crash_at = crash_at
        # Triggers whose runs were reconciled with the ledger since leadership or the
        # database last came back (see `reconcile_ledger`).
        self._ledger_synced: set[str] = set()
        # Jobs this replica is deleting for concurrencyPolicy Replace: recorded as Replaced,
        # not as deleted by someone else.
        self._replacing: set[str] = set()
        self._states: dict[str, str] = {}

    # -- entry points ----------------------------------------------------------------------

    async def reconcile(self, entry: TriggerEntry) -> datetime | None:
        try:
            due = await self._reconcile(entry)
            entry.forbidden_backoff = None
            return due
        except NotLeading:
            log.warning("stopped mid-pass: no longer leading", extra=self._context(entry))
            return None
        except Conflict:
            # Someone wrote the trigger since we read it: re-read, plan again at once.
            fresh = await self.gateway.read_trigger(entry.namespace, entry.name)
            if fresh is not None and fresh["metadata"]["uid"] == entry.uid:
                entry.body = fresh
            return self.clock.now()
        except ApiUnavailable as error:
            log.warning(
                "API server unavailable or not ready; retrying",
                extra={**self._context(entry), "error": str(error)},
            )
            return self.clock.now() + self.retry_delay
        except Forbidden as error:
            previous = entry.forbidden_backoff
            backoff = min(FORBIDDEN_MAX_RETRY, previous * 2) if previous else FORBIDDEN_FIRST_RETRY
            entry.forbidden_backoff = backoff
            log.error(
                "not allowed to act on this trigger; skipping it",
                extra={
                    **self._context(entry),
                    "error": str(error),
                    "retry_in": f"{backoff.total_seconds():.0f}s",
                },
            )
            return self.clock.now() + backoff

    def forget(self, entry: TriggerEntry) -> None:
        """The trigger was deleted: its active runs go with it (garbage collector)."""
        self._set_state(entry.uid, None)
        self._ledger_synced.discard(entry.uid)
        if self.ledger is None or not self.gate.may_write():
            return
        for job in entry.jobs.values():
            ref = run_ref(job)
            if job.result is RunResult.RUNNING and ref is not None:
                self.ledger.record_cancelled(
                    ref,
                    reason="TriggerDeleted",
                    message="the trigger was deleted, and its Jobs with it",
                    finished_at=self.clock.now(),
                )

    def job_changed(self, job: RunState, previous: RunState | None) -> None:
        """A Job of some trigger was seen for the first time, started, retried or finished.

        Jobs this process did not create (before a restart, by an earlier leader) count
        the same: the Job alone says which run it is.
        """
        if previous is None or previous.result is not job.result:
            if job.result is RunResult.SUCCEEDED:
                self.metrics.runs.labels(result="succeeded").inc()
            elif job.result is RunResult.FAILED:
                self.metrics.runs.labels(result="failed").inc()
        self._record_job(job)

    def job_deleted(self, job: RunState) -> None:
        """A Job is gone. Finished runs keep their rows; an unfinished one was stopped."""
        if job.uid in self._replacing:
            self._replacing.discard(job.uid)
            return
        ref = run_ref(job)
        if job.result is not RunResult.RUNNING or ref is None:
            return
        if self.ledger is not None and self.gate.may_write():
            self.ledger.record_cancelled(
                ref,
                reason="JobDeleted",
                message="the Job was deleted before it finished",
                finished_at=self.clock.now(),
            )

    def reconcile_ledger(self, entries: Iterable[TriggerEntry]) -> None:
        """Write again what the cluster shows about the runs of `entries`.

        Called when this replica starts leading and when the database is back after an
        outage: Job events seen while not leading, and records the writer dropped, are
        rebuilt from the Jobs and the trigger status (see `evidence`). Triggers that reach
        the cache later are reconciled on their first pass.
        """
        self._ledger_synced.clear()
        if self.ledger is None or not self.gate.may_write():
            return
        triggers = records = 0
        for entry in entries:
            if not entry.body["metadata"].get("deletionTimestamp"):
                triggers += 1
                records += self._sync_ledger(entry, _status_of(entry.body))
        log.info(
            "ledger reconciled with the cluster", extra={"triggers": triggers, "records": records}
        )

    # -- the pass ----------------------------------------------------------------------------

    async def _reconcile(self, entry: TriggerEntry) -> datetime | None:
        body = entry.body
        if body["metadata"].get("deletionTimestamp"):
            return None
        ref = TriggerRef(namespace=entry.namespace, name=entry.name, uid=entry.uid)
        now = self.clock.now()
        status = _status_of(body)

        # 1. Load and validate.
        spec, problem = self._load(body)
        if spec is not None and problem is None:
            problem = await self._check_job_template(entry, spec, ref)
        if spec is None or problem is not None:
            assert problem is not None
            await self._report_problem(entry, status, problem, now)
            self._set_state(entry.uid, "invalid")
            return None
        entry.reported_problem = None

        # 2. Rebuild from the world.
        jobs = dict(entry.jobs)
        if entry.uid not in self._ledger_synced:
            self._sync_ledger(entry, status)

        # 3. Plan.
        progress = progress_from_status(spec, status, created=_created(body, now), now=now)
        jitter = jitter_for(entry.uid, spec.jitter_seconds)
        outcome = plan(spec, progress, now=now, jitter=jitter, upcoming_count=self.upcoming_count)
        # Forbid and Replace decide on what runs now, and a missed time may have a Job from
        # a leader that crashed before moving the cursor: both need the Jobs as the API
        # has them, not as a possibly lagging cache. One listing serves the whole pass.
        decides_on_active = spec.concurrency_policy is not ConcurrencyPolicy.ALLOW
        if outcome.missed or (outcome.start and decides_on_active):
            await self._refresh_jobs(entry, jobs)
        if outcome.missed:
            outcome = _without_started(outcome, ref, jobs)

        # 4. Concurrency policy, then create.
        started: list[tuple[datetime, RunState]] = []
        skipped: list[tuple[datetime, RunKind, list[RunState]]] = []
        # Several times due in one pass means the operator was not dispatching: what it
        # starts now is catch-up, as is anything later than an ordinary dispatch delay.
        backlog = len(outcome.start) + outcome.missed_count > 1
        for scheduled_for in outcome.start:
            late = now - (scheduled_for + jitter)
            catch_up = backlog or late > CATCH_UP_NONE_GRACE
            kind = RunKind.CATCH_UP if catch_up else RunKind.SCHEDULED
            active = _active(jobs) if decides_on_active else []
            if active and spec.concurrency_policy is ConcurrencyPolicy.FORBID:
                skipped.append((scheduled_for, kind, active))
                continue
            if active and spec.concurrency_policy is ConcurrencyPolicy.REPLACE:
                await self._replace(ref, active, jobs)
            job = await self._start(ref, spec, scheduled_for, kind, now=now, jitter=jitter)
            jobs[job.name] = job
            started.append((scheduled_for, job))

        # 5. Run now.
        run_now = (body["metadata"].get("annotations") or {}).get(ANNOTATION_RUN_NOW)
        if run_now and not status.handled_run_now(run_now):
            job = await self._start(
                ref, spec, now, RunKind.MANUAL, now=now, jitter=timedelta(0), run_now=run_now
            )
            jobs[job.name] = job
            status = status.with_run_now(run_now, handled_at=now)

        # 6. Status. Then the times not started go to the ledger: only once status has
        # moved the cursor past them, so that a pass that fails and plans again never
        # leaves a skipped or missed row for a time that it then starts.
        new_status = self._next_status(
            spec, status, outcome, progress.fingerprint, progress.epoch, jobs, body, now
        )
        await self._write_status(entry, status, new_status)
        for scheduled_for, kind, active in skipped:
            self._record_skipped(ref, scheduled_for, kind, active)
        self._record_missed(ref, outcome)
        self._set_state(entry.uid, _state_of(spec, outcome))

        # 7. History.
        await self._prune(spec, jobs, entry)
        return outcome.next_due

    async def _refresh_jobs(self, entry: TriggerEntry, jobs: dict[str, RunState]) -> None:
        """Replace the cached view of the trigger's Jobs with what the API lists now."""
        listed = await self.gateway.list_jobs(
            entry.namespace, label_selector=f"{LABEL_TRIGGER_UID}={entry.uid}"
        )
        for item in listed:
            state = run_state(item)
            jobs[state.name] = state

    def _load(self, body: dict[str, Any]) -> tuple[TriggerSpec | None, Problem | None]:
        try:
            spec = TriggerSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            field = f"spec.{where}" if where else "spec"
            return None, Problem("InvalidSpec", f"{field}: {first['msg']}")
        try:
            # Compiling the schedule is where grammar and zone errors surface.
            schedule_of(spec)
        except ScheduleError as error:
            return spec, Problem(error.reason, str(error))
        return spec, None

    async def _check_job_template(
        self, entry: TriggerEntry, spec: TriggerSpec, ref: TriggerRef
    ) -> Problem | None:
        generation = entry.generation
        if entry.template_ok_generation == generation:
            return None
        if entry.template_error is not None and entry.template_error[0] == generation:
            return Problem("InvalidJobTemplate", entry.template_error[1])
        body = build_job(
            ref,
            spec.job_template.model_dump(mode="json", by_alias=True),
            scheduled_for=self.clock.now(),
            kind=RunKind.SCHEDULED,
            writer=self.gate.writer,
            payload=spec.payload,
        )
        try:
            await self.gateway.dry_run_job(body)
        except Invalid as error:
            message = f"spec.jobTemplate: the API server rejects the Job: {error}"
            entry.template_error = (generation, message)
            return Problem("InvalidJobTemplate", message)
        entry.template_ok_generation = generation
        entry.template_error = None
        return None

    async def _report_problem(
        self, entry: TriggerEntry, status: TriggerStatus, problem: Problem, now: datetime
    ) -> None:
        key = (entry.generation, problem.reason, problem.message)
        ready = _condition(status, "Ready")
        already = (
            ready is not None
            and ready.status == "False"
            and ready.reason == problem.reason
            and ready.message == problem.message
            and status.observed_generation == entry.generation
            and status.next_run_at is None
        )
        if not already:
            self._require_leader()
            new_status = status.model_copy(
                update={
                    "observed_generation": entry.generation,
                    "next_run_at": None,
                    "upcoming_runs": [],
                    "conditions": _set_condition(
                        status.conditions,
                        "False",
                        problem.reason,
                        problem.message,
                        now,
                        entry.generation,
                    ),
                }
            )
            await self._write_status(entry, status, new_status)
        if entry.reported_problem != key:
            entry.reported_problem = key
            log.warning(
                "trigger is invalid and will not run",
                extra={
                    **self._context(entry),
                    "reason": problem.reason,
                    "problem": problem.message,
                },
            )
            if self.gate.may_write():
                await self.gateway.emit_event(
                    namespace=entry.namespace,
                    name=entry.name,
                    uid=entry.uid,
                    event_type="Warning",
                    reason=problem.reason,
                    message=problem.message,
                    now=now,
                )

    async def _replace(
        self, ref: TriggerRef, active: list[RunState], jobs: dict[str, RunState]
    ) -> None:
        for job in active:
            self._require_leader()
            self._replacing.add(job.uid)
            try:
                deleted = await self.gateway.delete_job(ref.namespace, job.name, uid=job.uid)
            except BaseException:
                self._replacing.discard(job.uid)
                raise
            jobs.pop(job.name, None)
            if not deleted:
                self._replacing.discard(job.uid)
            else:
                self.metrics.runs.labels(result="cancelled").inc()
                log.info(
                    "replaced an active run",
                    extra={**_ref_context(ref), "job": job.name},
                )
                ledger_ref = run_ref(job)
                if self.ledger is not None and ledger_ref is not None:
                    self.ledger.record_cancelled(
                        ledger_ref,
                        reason="Replaced",
                        message="concurrencyPolicy Replace: a newer run started",
                        finished_at=self.clock.now(),
                    )

    async def _start(
        self,
        ref: TriggerRef,
        spec: TriggerSpec,
        scheduled_for: datetime,
        kind: RunKind,
        *,
        now: datetime,
        jitter: timedelta,
        run_now: str | None = None,
    ) -> RunState:
        writer = self.gate.writer
        body = build_job(
            ref,
            spec.job_template.model_dump(mode="json", by_alias=True),
            scheduled_for=scheduled_for,
            kind=kind,
            writer=writer,
            payload=spec.payload,
            run_now_value=run_now,
        )
        name = body["metadata"]["name"]
        context = {
            **_ref_context(ref),
            "scheduled_for": format_instant(scheduled_for),
            "job": name,
            "revision": writer.revision,
        }
        self._require_leader()
        try:
            created = await self.gateway.create_job(body)
            log.info("run started", extra=context)
            self.metrics.runs.labels(result="started").inc()
            self.metrics.dispatch_lateness.observe(
                max(0.0, (self.clock.now() - (scheduled_for + jitter)).total_seconds())
                if run_now is None
                else 0.0
            )
        except AlreadyExists:
            created = await self._existing(ref, name, scheduled_for)
            log.info("run already started", extra=context)
        if self.crash_at == CRASH_AFTER_JOB_CREATE:
            log.critical("fault injection: exiting after the Job create", extra=context)
            logging.shutdown()
            os._exit(86)
        state = run_state(created)
        # The Job names its run and the leader that created it (an earlier one, when it
        # already existed): one record makes the run's row, pending until it starts.
        self._record_job(state)
        return state

    async def _existing(
        self, ref: TriggerRef, name: str, scheduled_for: datetime
    ) -> dict[str, Any]:
        job = await self.gateway.read_job(ref.namespace, name)
        if job is None:
            raise NotFound(f"Job {name} exists and then did not", status=404)
        owners = job["metadata"].get("ownerReferences") or []
        annotations = job["metadata"].get("annotations") or {}
        ours = any(owner.get("uid") == ref.uid for owner in owners)
        same_time = parse_time(annotations.get(ANNOTATION_SCHEDULED_FOR)) == scheduled_for
        if not ours:
            raise Forbidden(f"Job {name} exists but belongs to another owner")
        if not same_time and not annotations.get(ANNOTATION_RUN_NOW):
            log.warning(
                "existing Job has another scheduled time",
                extra={**_ref_context(ref), "job": name},
            )
        return job

    def _next_status(
        self,
        spec: TriggerSpec,
        status: TriggerStatus,
        outcome: Plan,
        fingerprint: str | None,
        epoch: datetime | None,
        jobs: dict[str, RunState],
        body: dict[str, Any],
        now: datetime,
    ) -> TriggerStatus:
        generation = int(body["metadata"].get("generation") or 0)
        active = sorted(_active(jobs), key=lambda job: (job.scheduled_for or now, job.name))
        # The newest run by scheduled time; a pruned history keeps the last value seen.
        newest = max(
            (job for job in jobs.values() if job.scheduled_for is not None),
            key=lambda job: (job.scheduled_for or now, job.name),
            default=None,
        )
        last_run = status.last_run
        if (
            newest is not None
            and newest.scheduled_for is not None
            and (last_run is None or newest.scheduled_for >= last_run.scheduled_for)
        ):
            last_run = LastRun(
                name=newest.name,
                scheduled_for=newest.scheduled_for,
                result=newest.result,
            )
        successes = [
            job.finished
            for job in jobs.values()
            if job.result is RunResult.SUCCEEDED and job.finished is not None
        ]
        last_success = max(
            [t for t in (status.last_successful_time, *successes) if t is not None], default=None
        )
        scheduled = [
            job.scheduled_for
            for job in jobs.values()
            if job.scheduled_for is not None and job.kind != RunKind.MANUAL
        ]
        last_schedule = max(
            [t for t in (status.last_schedule_time, *scheduled) if t is not None], default=None
        )
        if spec.suspend:
            reason, message = "Suspended", "spec.suspend is true: no new runs start"
        elif outcome.completed:
            reason, message = "Completed", "the one-time run has been handled"
        elif outcome.next_run is None:
            reason, message = "NoFutureRuns", "the schedule fires no more times"
        else:
            reason, message = "Scheduled", f"next run at {format_instant(outcome.next_run)}"
        return status.model_copy(
            update={
                "observed_generation": generation,
                "next_run_at": outcome.next_run,
                "upcoming_runs": list(outcome.upcoming),
                "last_schedule_time": last_schedule,
                "last_successful_time": last_success,
                "last_run": last_run,
                "active": [ActiveRun(name=job.name, uid=job.uid) for job in active],
                "missed_runs": status.missed_runs + outcome.missed_count,
                "last_missed_time": outcome.last_missed or status.last_missed_time,
                "conditions": _set_condition(
                    status.conditions, "True", reason, message, now, generation
                ),
                "cursor": outcome.cursor,
                "schedule_hash": fingerprint,
                "spec_epoch": epoch,
                "completed": outcome.completed,
            }
        )

    async def _write_status(
        self, entry: TriggerEntry, old: TriggerStatus, new: TriggerStatus
    ) -> None:
        before = old.model_dump(mode="json", exclude_none=True)
        after = new.model_dump(mode="json")
        if before == {k: v for k, v in after.items() if v is not None}:
            return
        self._require_leader()
        updated = await self.gateway.patch_trigger_status(
            entry.namespace,
            entry.name,
            resource_version=str(entry.body["metadata"]["resourceVersion"]),
            status=after,
        )
        if updated["metadata"]["uid"] == entry.uid:
            entry.body = updated

    async def _prune(
        self, spec: TriggerSpec, jobs: dict[str, RunState], entry: TriggerEntry
    ) -> None:
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
                # The watch will confirm; until then, do not try again.
                entry.jobs.pop(job.name, None)
            except KubeError as error:
                log.warning(
                    "could not prune a finished Job", extra={"job": job.name, "error": str(error)}
                )

    # -- ledger and metrics ------------------------------------------------------------------

    def _record_missed(self, ref: TriggerRef, outcome: Plan) -> None:
        if outcome.missed_count:
            self.metrics.missed_runs.inc(outcome.missed_count)
            self.metrics.runs.labels(result="missed").inc(outcome.missed_count)
            log.warning(
                "scheduled times missed",
                extra={**_ref_context(ref), "missed": outcome.missed_count},
            )
        if self.ledger is None:
            return
        writer = self.gate.writer
        for scheduled_for in outcome.missed:
            self.ledger.record_missed(
                _scheduled_ref(ref, scheduled_for, RunKind.SCHEDULED),
                reason=MISSED_REASON,
                message=MISSED_MESSAGE,
                leader_identity=writer.identity,
                leader_revision=writer.revision,
            )

    def _record_skipped(
        self, ref: TriggerRef, scheduled_for: datetime, kind: RunKind, active: list[RunState]
    ) -> None:
        self.metrics.runs.labels(result="skipped").inc()
        log.info(
            "run skipped: an earlier run is active (Forbid)",
            extra={**_ref_context(ref), "scheduled_for": format_instant(scheduled_for)},
        )
        if self.ledger is None:
            return
        writer = self.gate.writer
        self.ledger.record_skipped(
            _scheduled_ref(ref, scheduled_for, kind),
            reason="ConcurrencyForbid",
            message=f"active: {', '.join(job.name for job in active)}",
            leader_identity=writer.identity,
            leader_revision=writer.revision,
        )

    def _record_job(self, job: RunState) -> None:
        if self.ledger is None or not self.gate.may_write():
            return
        record = job_record(job)
        if record is not None:
            self.ledger.record(record)

    def _sync_ledger(self, entry: TriggerEntry, status: TriggerStatus) -> int:
        """Hand the evidence of one trigger's runs to the ledger; how many records."""
        if self.ledger is None or not self.gate.may_write():
            return 0
        self._ledger_synced.add(entry.uid)
        return self.ledger.reconcile(trigger_evidence(entry, status))

    # -- helpers -------------------------------------------------------------------------------

    def _set_state(self, uid: str, state: str | None) -> None:
        """Keep the triggers-by-state gauge: one trigger counts in one state."""
        previous = self._states.pop(uid, None)
        if previous is not None:
            self.metrics.triggers.labels(state=previous).dec()
        if state is not None:
            self._states[uid] = state
            self.metrics.triggers.labels(state=state).inc()

    def _require_leader(self) -> None:
        if not self.gate.may_write():
            raise NotLeading

    def _context(self, entry: TriggerEntry) -> dict[str, Any]:
        return {
            "namespace": entry.namespace,
            "trigger": entry.name,
            "uid": entry.uid,
            "revision": self.gate.writer.revision,
        }


def _active(jobs: dict[str, RunState]) -> list[RunState]:
    return [job for job in jobs.values() if job.result is RunResult.RUNNING and not job.deleting]


def _without_started(outcome: Plan, ref: TriggerRef, jobs: dict[str, RunState]) -> Plan:
    """The plan less the missed times that have Jobs: a leader started them and crashed
    before moving the cursor, so they are runs, not misses."""
    started = {t for t in outcome.missed if scheduled_job_name(ref, t) in jobs}
    if not started:
        return outcome
    return dataclasses.replace(
        outcome,
        missed=tuple(t for t in outcome.missed if t not in started),
        missed_count=outcome.missed_count - len(started),
    )


def _state_of(spec: TriggerSpec, outcome: Plan) -> str:
    if spec.suspend:
        return "suspended"
    if outcome.completed:
        return "completed"
    return "scheduled" if outcome.next_run is not None else "idle"


def _scheduled_ref(ref: TriggerRef, scheduled_for: datetime, kind: RunKind) -> RunRef:
    """The ledger identity of a scheduled time that has no Job (skipped, missed)."""
    return RunRef.scheduled(
        namespace=ref.namespace,
        trigger_name=ref.name,
        trigger_uid=ref.uid,
        scheduled_for=scheduled_for,
        kind=kind,
    )


def _ref_context(ref: TriggerRef) -> dict[str, Any]:
    return {"namespace": ref.namespace, "trigger": ref.name, "uid": ref.uid}


def _status_of(body: dict[str, Any]) -> TriggerStatus:
    raw = body.get("status") or {}
    try:
        return TriggerStatus.model_validate(raw)
    except ValidationError:
        # A status we cannot read (hand-edited, older format) is rebuilt, not fatal.
        log.warning("unreadable trigger status; starting afresh", extra={"status": str(raw)[:200]})
        return TriggerStatus()


def _created(body: dict[str, Any], now: datetime) -> datetime:
    return parse_time(body["metadata"].get("creationTimestamp")) or now


def _condition(status: TriggerStatus, kind: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == kind), None)


def _set_condition(
    conditions: list[Condition],
    value: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> list[Condition]:
    current = next((c for c in conditions if c.type == "Ready"), None)
    changed = current is None or current.status != value
    ready = Condition.model_validate(
        {
            "type": "Ready",
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now
            if changed or current is None
            else current.last_transition_time,
            "observedGeneration": generation,
        }
    )
    return [*(c for c in conditions if c.type != "Ready"), ready]
