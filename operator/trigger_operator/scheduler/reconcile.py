"""One trigger, one pass: the numbered steps that turn due times into Jobs.

1. Validate (`validation`): an invalid spec, schedule, zone or Job template is reported
   on the trigger (Ready=False, one Warning Event per problem) and never runs.
2. Rebuild from the world: the Jobs the trigger owns (the cache, or a fresh listing when
   a decision depends on them); the ledger learns them once per leadership.
3. Plan (`schedule.planner`): which scheduled times start now, with their kinds, and
   which are missed; a time that already has a Job is a run, not a miss.
4. Apply concurrencyPolicy (Queue: `queue`), then create each Job (`runs`). Its name is derived from
   (uid, time), so AlreadyExists for our own Job means "already done": the run is
   started first and the cursor advanced second, and a crash between the two loses
   nothing.
5. Start a run for a new value of the run-now annotation (`manual`), and a backfill's
   next times (`backfill`).
6. Patch status (`status`, `publish`) with a resourceVersion precondition: a stale
   writer gets 409 and re-reads instead of moving the cursor back. The times passed
   without a run go into the same patch (`status.notStarted`), and only then reach the
   ledger (`recorder`): a pass that fails and plans again never leaves a skipped or
   missed row for a time that it then starts, and a crash that loses the queued rows
   leaves their evidence for the next leader's reconciliation.
7. Prune finished Jobs beyond the history limits, and release deleted Jobs whose times
   status now shows handled and whose final rows the ledger has committed (`runs`: the
   run-record finalizer); while one waits for the ledger, the pass comes back soon.

`reconcile` returns when the trigger next needs a pass (its next due time), or None.
What goes wrong becomes a time to look again, never a storm: a conflict re-reads the
trigger and plans at once; a 404 (the trigger is gone) ends the work; an unavailable API
is retried after `retry_delay`; a 403, a Job create the API server refuses (shown as
InvalidJobTemplate) and any unexpected error (shown as PassFailed) back off from seconds
to five minutes, each reported on the trigger with one Event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import TriggerRef, scheduled_job_name
from trigger_operator.jobs.state import ObservedJob
from trigger_operator.kube.gateway import (
    ApiUnavailable,
    Conflict,
    Fenced,
    Forbidden,
    Invalid,
    NotFound,
)
from trigger_operator.metrics import TriggerState
from trigger_operator.models.api import GROUP
from trigger_operator.models.instants import parse_api_time
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import ConcurrencyPolicy, TriggerSpec
from trigger_operator.models.status import (
    NOT_STARTED_HISTORY_LIMIT,
    NotStarted,
    QueuedRun,
    TriggerStatus,
)
from trigger_operator.schedule.calendars import NO_EXCLUSIONS, ExclusionSet
from trigger_operator.schedule.errors import ScheduleError
from trigger_operator.schedule.jitter import jitter_for
from trigger_operator.schedule.planner import Plan, plan
from trigger_operator.schedule.progress import (
    Progress,
    progress_from_status,
    schedule_fingerprint,
)
from trigger_operator.scheduler.backfill import Backfiller
from trigger_operator.scheduler.cache import TriggerEntry, compact
from trigger_operator.scheduler.calendars import CalendarStore
from trigger_operator.scheduler.evidence import EXCLUDED_REASON, FORBID_REASON, MISSED_REASON
from trigger_operator.scheduler.failures import FailureCheck, FailureGuard
from trigger_operator.scheduler.gate import Gate, NotLeading, begin_pass
from trigger_operator.scheduler.manual import ManualRuns
from trigger_operator.scheduler.ports import SchedulerGateway
from trigger_operator.scheduler.publish import StatusPublisher
from trigger_operator.scheduler.queue import SUPERSEDED_REASON, hold, queued_kind
from trigger_operator.scheduler.recorder import RunRecorder, ref_context
from trigger_operator.scheduler.runs import RunDispatcher
from trigger_operator.scheduler.status import (
    Problem,
    active_runs,
    next_status,
    status_of,
    trigger_state,
)
from trigger_operator.scheduler.validation import INVALID_JOB_TEMPLATE, Validator, load_spec

log = logging.getLogger(__name__)

# A refusal right after install is often RBAC not yet propagated; a lasting one is a
# namespace the operator may not write. Look again soon, then ever more rarely; the same
# for a refused Job and for an unexpected error.
FORBIDDEN_FIRST_RETRY = timedelta(seconds=10)
FAILED_FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=5)
# A deleted Job waits for its run's final ledger row before it may go: look again soon.
SETTLE_RETRY = timedelta(seconds=2)


@dataclass
class _Pass:
    """What one pass over one trigger has read and decided so far."""

    entry: TriggerEntry
    spec: TriggerSpec
    status: TriggerStatus
    now: datetime
    jobs: dict[str, ObservedJob]
    # The status as read when the pass began, and the resourceVersion it was read at: the
    # pass plans from that copy, so its freshness check and its status patch are about
    # that version, whatever watch events put into the entry while the pass waited.
    read: TriggerStatus
    version: str
    progress: Progress | None = None
    jitter: timedelta = timedelta(0)
    exclusions: ExclusionSet = NO_EXCLUSIONS
    outcome: Plan = field(default_factory=Plan)
    skipped: list[tuple[datetime, RunKind, list[ObservedJob]]] = field(default_factory=list)
    failures: FailureCheck | None = None
    superseded: list[tuple[QueuedRun, datetime]] = field(default_factory=list)

    @property
    def ref(self) -> TriggerRef:
        return self.entry.ref


class Reconciler:
    """Carries out one pass over one trigger."""

    retry_delay = timedelta(seconds=5)

    def __init__(
        self,
        *,
        gateway: SchedulerGateway,
        gate: Gate,
        clock: Clock,
        recorder: RunRecorder,
        upcoming_count: int = 3,
        crash_at: str | None = None,
        calendars: CalendarStore | None = None,
    ) -> None:
        self.gateway = gateway
        self.calendars = calendars or CalendarStore()
        self.gate = gate
        self.clock = clock
        self.recorder = recorder
        self.upcoming_count = upcoming_count
        publisher = StatusPublisher(gateway=gateway, gate=gate)
        self.publisher = publisher
        self.validator = Validator(
            gateway=gateway, gate=gate, clock=clock, publisher=publisher, calendars=self.calendars
        )
        self.runs = RunDispatcher(gateway=gateway, gate=gate, recorder=recorder, crash_at=crash_at)
        self.manual = ManualRuns(runs=self.runs, publisher=publisher)
        self.failures = FailureGuard(publisher=publisher, recorder=recorder)
        self.backfill = Backfiller(runs=self.runs, publisher=publisher, recorder=recorder)

    async def reconcile(self, entry: TriggerEntry) -> datetime | None:
        """One pass; the domain errors of the API become a time to look again."""
        try:
            return await self._reconcile(entry)
        except (NotLeading, Fenced):
            log.warning("stopped mid-pass: no longer leading", extra=self._context(entry))
            return None
        except NotFound:
            # The trigger is gone (its status patch answered 404): its DELETED event or
            # the next resync removes it; nothing is left to do for it.
            return None
        except Conflict:
            return await self._reread(entry)
        except ApiUnavailable as error:
            log.warning(
                "API server unavailable or not ready; retrying",
                extra={**self._context(entry), "error": str(error)},
            )
            return self.clock.now() + self.retry_delay
        except Forbidden as error:
            return self._forbidden(entry, error)
        except Invalid as error:
            return await self._refused(entry, error)
        except Exception as error:  # a bug, or an object nothing expected: not a storm
            return await self._failed(entry, error)

    # -- the pass ----------------------------------------------------------------------------

    async def _reconcile(self, entry: TriggerEntry) -> datetime | None:
        if entry.body["metadata"].get("deletionTimestamp"):
            return None
        begin_pass(self.gate)
        now = self.clock.now()
        status = status_of(entry.body)
        version = str(entry.resource_version)
        # 1. Validate.
        spec, problem = await self.validator.check(entry, status)
        if spec is None or problem is not None:
            assert problem is not None
            await self.validator.report(entry, status, problem, now, version=version)
            self.recorder.set_state(entry.uid, TriggerState.INVALID)
            return None
        retry_at = self._refusal_stands(entry, now)
        if retry_at is not None:
            return retry_at
        work = _Pass(
            entry=entry,
            spec=spec,
            status=status,
            now=now,
            jobs=dict(entry.jobs),
            read=status,
            version=version,
        )
        # 2. and 3. Rebuild from the world, plan.
        self.recorder.sync_once(entry, status)
        work.failures = self.failures.check(entry, spec, work.status, work.jobs, now=now)
        work.status = work.failures.status
        await self._plan(work)
        if _may_start(work) and not await self._fresh(entry, work.version):
            return self.clock.now()  # the cache lagged: plan again from what the API has
        # 4. Concurrency policy, then create; first a time Queue held, once nothing runs.
        await self._start_queued(work)
        for run in work.outcome.starts:
            await self._start_scheduled(work, run.scheduled_for, run.kind)
        # 5. Run now, and the times of a backfill.
        await self._run_now(work)
        work.status, retry_at = await self.backfill.advance(
            entry, spec, work.status, work.jobs, now=now, exclusions=work.exclusions
        )
        # 6. Status, then what was not started.
        await self._publish(work)
        entry.reported_problem = entry.backoff = None  # a whole pass went through
        # 7. History.
        await self.runs.prune(entry, spec, work.jobs)
        looks = [work.outcome.next_due, retry_at]
        if await self.runs.release_handled(entry, work.jobs, work.status):
            looks.append(now + SETTLE_RETRY)
        return min((t for t in looks if t is not None), default=None)

    async def _plan(self, work: _Pass) -> None:
        """Plan; list the Jobs first when a decision depends on them."""
        entry = work.entry
        work.exclusions = self.calendars.resolve(entry.namespace, work.spec)
        digest = work.exclusions.digest
        fingerprint = schedule_fingerprint(work.spec, exclusions=digest)
        noticed = entry.noticed_edit
        work.progress = progress_from_status(
            work.spec,
            work.status,
            created=_created(entry.body, work.now),
            now=work.now,
            noticed=noticed[1] if noticed is not None and noticed[0] == fingerprint else None,
            exclusions=digest,
        )
        edited = work.progress.epoch != work.status.spec_epoch
        entry.noticed_edit = (
            (fingerprint, work.progress.epoch) if edited and work.progress.epoch else None
        )
        work.jitter = jitter_for(work.entry.uid, work.spec.jitter_seconds)
        work.outcome = self._plan_with(work)
        # Forbid and Replace decide on what runs now, and a missed (or excluded) time may
        # have a Job from a leader that crashed before moving the cursor: both need the Jobs
        # as the API has them, not as a possibly lagging cache. One listing serves the whole pass.
        decides_on_active = work.spec.concurrency_policy is not ConcurrencyPolicy.ALLOW
        if (
            work.outcome.missed
            or work.outcome.excluded
            or (work.outcome.starts and decides_on_active)
        ):
            await self.runs.refresh(work.entry, work.jobs)
            work.outcome = self._plan_with(work)

    def _plan_with(self, work: _Pass) -> Plan:
        assert work.progress is not None
        if work.failures is not None and work.failures.halted is not None:
            # Suspended after failures: as spec.suspend, nothing is planned.
            return Plan(cursor=work.progress.cursor, completed=work.progress.completed)
        existing = {
            job.scheduled_for
            for job in work.jobs.values()
            if job.scheduled_for is not None and job.run_now is None
        }
        return plan(
            work.spec,
            work.progress,
            now=work.now,
            jitter=work.jitter,
            upcoming_count=self.upcoming_count,
            existing=existing,
            hash_key=work.entry.uid,
            exclusions=work.exclusions,
        )

    async def _start_scheduled(self, work: _Pass, scheduled_for: datetime, kind: RunKind) -> None:
        """Start one planned time, as concurrencyPolicy allows.

        A Job that exists for this very time means the time has started (a predecessor
        created it and stopped before moving the cursor): it is neither "another active
        run" for Forbid or Replace, nor created again.
        """
        name = scheduled_job_name(work.ref, scheduled_for)
        if name in work.jobs:
            self.recorder.job_seen(work.jobs[name])
            return
        policy = work.spec.concurrency_policy
        active = active_runs(work.jobs.values()) if policy is not ConcurrencyPolicy.ALLOW else []
        if active and policy is ConcurrencyPolicy.FORBID:
            work.skipped.append((scheduled_for, kind, active))
            return
        if active and policy is ConcurrencyPolicy.QUEUE:
            held = hold(work.status, scheduled_for, kind, now=work.now)
            work.status = held.status
            if held.superseded is not None:
                work.superseded.append((held.superseded, scheduled_for))
            return
        if active and policy is ConcurrencyPolicy.REPLACE:
            await self.runs.replace(work.ref, active, work.jobs)
        job = await self.runs.start(
            work.ref, work.spec, scheduled_for, kind, due=scheduled_for + work.jitter
        )
        _created_here(work, job)

    async def _start_queued(self, work: _Pass) -> None:
        """Start the time concurrencyPolicy Queue held, when no run is active any more."""
        queued = work.status.queued
        if queued is None:
            return
        name = scheduled_job_name(work.ref, queued.scheduled_for)
        if name not in work.jobs:
            await self.runs.refresh(work.entry, work.jobs)  # decide on the API's view
        if name not in work.jobs:
            if active_runs(work.jobs.values()):
                return
            job = await self.runs.start(
                work.ref,
                work.spec,
                queued.scheduled_for,
                queued_kind(queued),
                due=queued.scheduled_for + work.jitter,
            )
            _created_here(work, job)
        work.status = work.status.model_copy(update={"queued": None})

    async def _run_now(self, work: _Pass) -> None:
        """Start one run for a run-now value that status has not seen handled."""
        work.status = await self.manual.run_now(
            work.entry, work.spec, work.status, work.jobs, now=work.now
        )

    async def _publish(self, work: _Pass) -> None:
        """Write the new status; then the times not started go to the ledger."""
        assert work.progress is not None
        new_status = next_status(
            work.status,
            spec=work.spec,
            outcome=work.outcome,
            progress=work.progress,
            jobs=work.jobs,
            generation=work.entry.generation,
            now=work.now,
            halted=work.failures.halted if work.failures else None,
        ).with_not_started(_not_started(work))
        # Against the status as read: the pass may have changed work.status already
        # (a refused run-now value, the failure count) without anything else changing.
        work.version = await self.publisher.write_status(
            work.entry, work.read, new_status, version=work.version
        )
        work.read = work.status = new_status
        if work.failures is not None:
            await self.failures.report(work.entry, work.failures, now=work.now)
        for scheduled_for, kind, active in work.skipped:
            self.recorder.skipped(work.ref, scheduled_for, kind, active)
        for queued, newer in work.superseded:
            self.recorder.superseded(work.ref, queued.scheduled_for, queued_kind(queued), by=newer)
        self.recorder.missed(work.ref, work.outcome)
        halted = work.failures is not None and work.failures.halted is not None
        self.recorder.set_state(
            work.entry.uid, trigger_state(work.spec, work.outcome, halted=halted)
        )

    # -- helpers -------------------------------------------------------------------------------

    def _refusal_stands(self, entry: TriggerEntry, now: datetime) -> datetime | None:
        """When a refused Job create still holds the trigger back: the time to try again.

        The trigger goes on showing the refusal meanwhile (an event, not a new problem).
        """
        if entry.refused is None:
            return None
        generation, _, retry_at = entry.refused
        if generation != entry.generation or now >= retry_at:
            entry.refused = None  # edited, or time to try again
            return None
        return retry_at

    async def _fresh(self, entry: TriggerEntry, planned: str) -> bool:
        """Whether the copy the pass planned from (resourceVersion `planned`) is what the
        API has, read once per leadership term before the pass may start a run.

        A replica that takes the Lease may not have processed its watch's events yet (a
        process resumed from a pause supersedes a lower revision within milliseconds): its
        copy may show a cursor before times the previous leader ran and whose Jobs are
        gone, and a Job would start a second time. The previous leader's writes are all
        in the API by now (it stopped at its deadline), so one read in this term
        suffices; this leader's own writes keep the copy current after that.

        The read is compared with the version planned from, not with the entry as it is
        when the read returns: the watch catching up during the read puts the API's
        version into the entry, and would make a plan from the lagging copy look fresh.
        """
        term = self.gate.term
        if entry.fresh_term == term:
            return True
        fresh = await self.gateway.read_trigger(entry.namespace, entry.name)
        if fresh is None or fresh["metadata"]["uid"] != entry.uid:
            raise NotFound(f"scheduledtriggers {entry.name} is gone", status=404)
        api_version = fresh["metadata"].get("resourceVersion")
        # Either way the entry now holds the API's copy (or a newer one from the watch),
        # and the next pass plans from it: fresh for this term.
        if api_version != entry.resource_version:
            entry.update(compact(fresh))
        entry.fresh_term = term
        if api_version == planned:
            return True
        log.info(
            "the copy of the trigger lagged; planning again from the API",
            extra={
                **self._context(entry),
                "term": term,
                "cached_version": planned,
                "api_version": api_version,
            },
        )
        return False

    async def _reread(self, entry: TriggerEntry) -> datetime | None:
        """Someone wrote the trigger since we read it: re-read, plan again at once.

        When the name now belongs to another trigger (deleted and created again), this
        entry's trigger is gone: the new one arrives as an object of its own.
        """
        fresh = await self.gateway.read_trigger(entry.namespace, entry.name)
        if fresh is None or fresh["metadata"]["uid"] != entry.uid:
            return None
        entry.update(compact(fresh))
        return self.clock.now()

    async def _refused(self, entry: TriggerEntry, error: Invalid) -> datetime:
        """The API server refused a Job that passed validation (say, an admission policy
        added since): the trigger shows InvalidJobTemplate and is tried again later."""
        self.recorder.refused(entry.ref)
        message = f"spec.jobTemplate: the API server refuses the Job: {error}"
        retry_at = self.clock.now() + self._next_backoff(entry, FAILED_FIRST_RETRY)
        entry.refused = (entry.generation, message, retry_at)
        await self._report_quietly(entry, Problem(INVALID_JOB_TEMPLATE, message))
        return retry_at

    async def _failed(self, entry: TriggerEntry, error: Exception) -> datetime:
        """An unexpected error: reported on the trigger once, retried with back-off."""
        problem = Problem("PassFailed", f"the operator could not handle this trigger: {error!r}")
        if entry.reported_problem is None or entry.reported_problem[1:] != (
            problem.reason,
            problem.message,
        ):
            log.exception("pass failed; retrying with back-off", extra=self._context(entry))
        retry_at = self.clock.now() + self._next_backoff(entry, FAILED_FIRST_RETRY)
        await self._report_quietly(entry, problem)
        return retry_at

    async def _report_quietly(self, entry: TriggerEntry, problem: Problem) -> None:
        """Report a problem of a valid trigger (refused, failed): its times are kept."""
        spec, _ = load_spec(entry.body)
        fingerprint = None
        if spec is not None:
            try:
                digest = self.calendars.resolve(entry.namespace, spec).digest
                fingerprint = schedule_fingerprint(spec, exclusions=digest)
            except ScheduleError:
                pass  # a calendar gone meanwhile: the next pass reports that
        try:
            await self.validator.report(
                entry,
                status_of(entry.body),
                problem,
                self.clock.now(),
                version=str(entry.resource_version),
                fingerprint=fingerprint,
            )
            self.recorder.set_state(entry.uid, TriggerState.INVALID)
        except Exception as error:  # the report is best effort; the back-off stands
            log.warning(
                "could not report a problem on the trigger",
                extra={**self._context(entry), "error": str(error)},
            )

    def _next_backoff(self, entry: TriggerEntry, first: timedelta) -> timedelta:
        previous = entry.backoff
        entry.backoff = min(MAX_RETRY, previous * 2) if previous else first
        return entry.backoff

    def _forbidden(self, entry: TriggerEntry, error: Forbidden) -> datetime:
        backoff = self._next_backoff(entry, FORBIDDEN_FIRST_RETRY)
        log.error(
            "not allowed to act on this trigger; skipping it",
            extra={
                **self._context(entry),
                "error": str(error),
                "retry_in": f"{backoff.total_seconds():.0f}s",
            },
        )
        return self.clock.now() + backoff

    def _context(self, entry: TriggerEntry) -> dict[str, Any]:
        return {**ref_context(entry.ref), "revision": self.gate.writer.revision}


def _created_here(work: _Pass, job: ObservedJob) -> None:
    """The pass knows its new Job; so does the cache, before the watch reports it.

    The watch's ADDED event then finds the Job known and the status already showing it,
    and costs no second pass (at a burst of due times, half the passes).
    """
    work.jobs[job.name] = job
    work.entry.jobs.setdefault(job.name, job)


def _not_started(work: _Pass) -> list[NotStarted]:
    """The times this pass passes without a run, for status to remember (`evidence`)."""
    passed = [
        NotStarted(scheduled_for=scheduled_for, reason=FORBID_REASON, kind=kind.value)
        for scheduled_for, kind, _ in work.skipped
    ]
    passed += [
        NotStarted(scheduled_for=scheduled_for, reason=MISSED_REASON)
        for scheduled_for in work.outcome.missed[-NOT_STARTED_HISTORY_LIMIT:]
    ]
    passed += [
        NotStarted(scheduled_for=scheduled_for, reason=EXCLUDED_REASON, excluded_by=source)
        for scheduled_for, source in work.outcome.excluded[-NOT_STARTED_HISTORY_LIMIT:]
    ]
    passed += [
        NotStarted.model_validate(
            {
                "scheduledFor": queued.scheduled_for,
                "reason": SUPERSEDED_REASON,
                "kind": queued_kind(queued).value,
            }
        )
        for queued, _ in work.superseded
    ]
    return passed


# The annotations by which people ask for runs: run-now (and its payload), backfill, resume.
REQUEST_PREFIX = f"{GROUP}/"


def _may_start(work: _Pass) -> bool:
    """Whether the pass may start a run: a due time, a held one, a backfill, or a request
    annotated."""
    if work.outcome.starts or work.status.queued is not None or work.status.backfill:
        return True
    annotations = work.entry.body["metadata"].get("annotations") or {}
    return any(key.startswith(REQUEST_PREFIX) for key in annotations)


def _created(body: dict[str, Any], now: datetime) -> datetime:
    return parse_api_time(body["metadata"].get("creationTimestamp")) or now
