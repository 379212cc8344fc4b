"""A trigger's next status, built from the plan and the Jobs it owns. Pure.

What people read in status (active, lastRun, lastSuccessfulTime, lastScheduleTime) is
rebuilt from the Jobs each pass, so it follows the world rather than the last status;
what the Jobs cannot say (a pruned history, the missed count) carries over from the
previous status. The scheduler's bookkeeping (cursor, scheduleHash, specEpoch,
completed) comes from the plan and the progress it was made from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.metrics import TriggerState
from trigger_operator.models.instants import format_instant
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import ActiveRun, Condition, LastRun, TriggerStatus
from trigger_operator.schedule.planner import Plan
from trigger_operator.schedule.progress import Progress

log = logging.getLogger(__name__)

READY = "Ready"
SUSPENDED_AFTER_FAILURES = "SuspendedAfterFailures"


@dataclass(frozen=True)
class Problem:
    """Why a trigger cannot run, as its Ready condition shows it."""

    reason: str
    message: str


def status_of(body: dict[str, Any]) -> TriggerStatus:
    """A trigger's status as a model; one that cannot be read is rebuilt, not fatal."""
    raw = body.get("status") or {}
    try:
        return TriggerStatus.model_validate(raw)
    except ValidationError:
        # Hand-edited, or an older format.
        log.warning("unreadable trigger status; starting afresh", extra={"status": str(raw)[:200]})
        return TriggerStatus()


def active_runs(jobs: Iterable[ObservedJob]) -> list[ObservedJob]:
    """The Jobs that have not finished and are not being deleted."""
    return [job for job in jobs if job.result is RunResult.RUNNING and not job.deleting]


def next_status(
    status: TriggerStatus,
    *,
    spec: TriggerSpec,
    outcome: Plan,
    progress: Progress,
    jobs: Mapping[str, ObservedJob],
    generation: int,
    now: datetime,
    halted: str | None = None,
) -> TriggerStatus:
    """The status of a valid trigger once `outcome` has been carried out.

    `halted` says why the trigger starts no scheduled runs although it is valid
    (suspended after repeated failures): Ready is then False with that message.
    """
    ready, (reason, message) = "True", _ready_reason(spec, outcome)
    if halted is not None:
        ready, reason, message = "False", SUSPENDED_AFTER_FAILURES, halted
    return status.model_copy(
        update={
            "observed_generation": generation,
            "next_run_at": outcome.next_run,
            "upcoming_runs": list(outcome.upcoming),
            "last_schedule_time": _latest(
                status.last_schedule_time,
                (
                    job.scheduled_for
                    for job in jobs.values()
                    if job.scheduled_for is not None and job.kind != RunKind.MANUAL
                ),
            ),
            "last_successful_time": _latest(
                status.last_successful_time,
                (
                    job.finished
                    for job in jobs.values()
                    if job.result is RunResult.SUCCEEDED and job.finished is not None
                ),
            ),
            "last_run": _last_run(status.last_run, jobs.values(), now),
            "active": [
                ActiveRun(name=job.name, uid=job.uid)
                for job in sorted(
                    active_runs(jobs.values()), key=lambda job: (job.scheduled_for or now, job.name)
                )
            ],
            "missed_runs": status.missed_runs + outcome.missed_count,
            "last_missed_time": outcome.last_missed or status.last_missed_time,
            "conditions": set_ready(status.conditions, ready, reason, message, now, generation),
            "cursor": outcome.cursor,
            "schedule_hash": progress.fingerprint,
            "spec_epoch": progress.epoch,
            "completed": outcome.completed,
        }
    )


def invalid_status(
    status: TriggerStatus,
    problem: Problem,
    *,
    generation: int,
    now: datetime,
    fingerprint: str | None = None,
) -> TriggerStatus:
    """The status of a trigger that cannot run: Ready=False, nothing scheduled.

    `fingerprint` is the schedule's, when the spec itself is valid (the API refused a
    Job, a pass failed): status then shows its times were never edited away, and they
    run once the trouble passes. Without it, a trigger invalid since its creation has no
    fingerprint, and its fix counts as an edit (`schedule.progress`).
    """
    return status.model_copy(
        update={
            "observed_generation": generation,
            "schedule_hash": fingerprint or status.schedule_hash,
            "next_run_at": None,
            "upcoming_runs": [],
            "conditions": set_ready(
                status.conditions, "False", problem.reason, problem.message, now, generation
            ),
        }
    )


def ready_at(status: TriggerStatus, generation: int) -> bool:
    """Whether `status` shows this generation valid and scheduled (Ready=True)."""
    ready = next((c for c in status.conditions if c.type == READY), None)
    return (
        ready is not None
        and ready.status == "True"
        and status.observed_generation == generation
        and ready.observed_generation in (None, generation)
    )


def shows_problem(status: TriggerStatus, problem: Problem, *, generation: int) -> bool:
    """Whether `status` already reports `problem` for this generation."""
    ready = next((c for c in status.conditions if c.type == READY), None)
    return (
        ready is not None
        and ready.status == "False"
        and ready.reason == problem.reason
        and ready.message == problem.message
        and status.observed_generation == generation
        and status.next_run_at is None
    )


def trigger_state(spec: TriggerSpec, outcome: Plan, *, halted: bool = False) -> TriggerState:
    """The state a valid trigger counts in (the triggers-by-state gauge)."""
    if spec.suspend or halted:
        return TriggerState.SUSPENDED
    if outcome.completed:
        return TriggerState.COMPLETED
    return TriggerState.SCHEDULED if outcome.next_run is not None else TriggerState.IDLE


def set_ready(
    conditions: list[Condition],
    value: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """`conditions` with Ready set; its transition time moves only when its status does."""
    current = next((c for c in conditions if c.type == READY), None)
    changed = current is None or current.status != value
    ready = Condition.model_validate(
        {
            "type": READY,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now
            if changed or current is None
            else current.last_transition_time,
            "observedGeneration": generation,
        }
    )
    return [*(c for c in conditions if c.type != READY), ready]


def _ready_reason(spec: TriggerSpec, outcome: Plan) -> tuple[str, str]:
    if spec.suspend:
        return "Suspended", "spec.suspend is true: no new runs start"
    if outcome.completed:
        return "Completed", "the one-time run has been handled"
    if outcome.next_run is None:
        return "NoFutureRuns", "the schedule fires no more times"
    return "Scheduled", f"next run at {format_instant(outcome.next_run)}"


def _latest(previous: datetime | None, seen: Iterable[datetime]) -> datetime | None:
    return max([t for t in (previous, *seen) if t is not None], default=None)


def _last_run(
    previous: LastRun | None, jobs: Iterable[ObservedJob], now: datetime
) -> LastRun | None:
    # The newest run by scheduled time; a pruned history keeps the last value seen.
    newest = max(
        (job for job in jobs if job.scheduled_for is not None),
        key=lambda job: (job.scheduled_for or now, job.name),
        default=None,
    )
    if newest is None or newest.scheduled_for is None:
        return previous
    if previous is not None and newest.scheduled_for < previous.scheduled_for:
        return previous
    return LastRun(name=newest.name, scheduled_for=newest.scheduled_for, result=newest.result)
