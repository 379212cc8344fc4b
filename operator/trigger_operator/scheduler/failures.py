"""spec.failurePolicy in the pass: count failed runs, suspend after too many, resume.

The counting is `jobs.streak` (pure); this module feeds it the trigger's Jobs and its
annotations, keeps the result in the status the pass writes, and reports a suspension
once it is written: one Warning Event `SuspendedAfterFailures` and the
`trigger_operator_failure_suspensions_total` counter. The spec is never changed: a
suspended trigger shows `Ready=False` with that reason and `nextRunAt: null`.

A resume (a new `triggers.dev/resume` value, or any spec edit) is dated like an edit of
the schedule (`status.specEpoch` is now), so the times that passed while suspended never
fire; the next run is the next time after the resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trigger_operator.jobs.state import ObservedJob
from trigger_operator.jobs.streak import StreakUpdate, update_streak
from trigger_operator.models.requests import ANNOTATION_RESUME
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import FailureStreak, TriggerStatus
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.publish import StatusPublisher
from trigger_operator.scheduler.recorder import RunRecorder
from trigger_operator.scheduler.status import SUSPENDED_AFTER_FAILURES


@dataclass(frozen=True)
class FailureCheck:
    """The status to plan with, and whether the trigger may start scheduled runs."""

    status: TriggerStatus
    halted: str | None = None
    """Why no scheduled run starts (the Ready message), or None."""
    suspended_now: bool = False


class FailureGuard:
    """Keeps status.failures and the suspension it causes."""

    def __init__(self, *, publisher: StatusPublisher, recorder: RunRecorder) -> None:
        self.publisher = publisher
        self.recorder = recorder

    def check(
        self,
        entry: TriggerEntry,
        spec: TriggerSpec,
        status: TriggerStatus,
        jobs: dict[str, ObservedJob],
        *,
        now: datetime,
    ) -> FailureCheck:
        """Count the runs finished since the last pass; resume when asked to."""
        limit = (
            spec.failure_policy.suspend_after_consecutive_failures if spec.failure_policy else None
        )
        if limit is None:
            if status.failures is None:
                return FailureCheck(status)
            # The policy was removed: an edit, so a suspension ends, dated now.
            was_suspended = status.failures.suspended_at is not None
            update = {"failures": None, **({"spec_epoch": now} if was_suspended else {})}
            return FailureCheck(status.model_copy(update=update))
        annotations = entry.body["metadata"].get("annotations") or {}
        result: StreakUpdate = update_streak(
            status.failures or FailureStreak(),
            jobs.values(),
            limit=limit,
            generation=entry.generation,
            resume=annotations.get(ANNOTATION_RESUME),
            now=now,
        )
        changes: dict[str, object] = {"failures": result.streak}
        if result.resumed_now:
            changes["spec_epoch"] = now
        checked = status.model_copy(update=changes)
        if result.streak.suspended_at is None:
            return FailureCheck(checked)
        message = (
            f"suspended after {limit} consecutive failed runs "
            f"(spec.failurePolicy.suspendAfterConsecutiveFailures): no new runs start; "
            f"resume with `trigger-operator resume {entry.name}` or by editing the spec"
        )
        return FailureCheck(checked, halted=message, suspended_now=result.suspended_now)

    async def report(self, entry: TriggerEntry, check: FailureCheck, *, now: datetime) -> None:
        """Once the suspension is in status: one Event, one count in the metric."""
        if not check.suspended_now or check.halted is None:
            return
        self.recorder.suspended_after_failures(entry.ref)
        await self.publisher.warn(
            entry, reason=SUSPENDED_AFTER_FAILURES, message=check.halted, now=now
        )
