"""`status` of a ScheduledTrigger: what the operator observed and decided.

Written only by the leader's scheduler. The first group of fields is for people and
dashboards; the second (`cursor`, `scheduleHash`, `specEpoch`, `completed`, `runNow`)
is the scheduler's own bookkeeping, kept on the object so that any replica that becomes
leader resumes exactly where the last one stopped.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, computed_field

from trigger_operator.models.base import ResourceModel
from trigger_operator.models.instants import Instant

RUN_NOW_HISTORY_LIMIT = 10
"""How many handled run-now values status remembers; older ones are dropped."""

NOT_STARTED_HISTORY_LIMIT = 10
"""How many scheduled times passed without a run (skipped, missed) status remembers."""


class RunResult(StrEnum):
    """How a run ended, or that it has not yet."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class LastRun(ResourceModel):
    """The most recently started run."""

    name: str
    """The name of its Job."""

    scheduled_for: Instant
    """The time it was scheduled for (not when it started)."""

    result: RunResult
    """Running, Succeeded, Failed, or Cancelled (deleted by concurrencyPolicy: Replace)."""


class ActiveRun(ResourceModel):
    """A Job of this trigger that has not finished."""

    name: str
    """The name of the Job."""

    uid: str
    """The uid of the Job."""


class Condition(ResourceModel):
    """A condition of the trigger, as metav1.Condition."""

    type: str
    """The kind of condition, e.g. Ready."""

    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""

    reason: str
    """A CamelCase reason, e.g. Scheduled, InvalidSchedule, InvalidTimeZone, Completed."""

    message: str = ""
    """A human-readable message naming the field and the problem."""

    last_transition_time: Instant
    """When status last changed."""

    observed_generation: int | None = None
    """The metadata.generation this condition was computed from."""


class RunNowRecord(ResourceModel):
    """A value of the triggers.dev/run-now annotation that has been handled."""

    value: str
    """The annotation value; the same value never starts a second run."""

    handled_at: Instant
    """When the operator started the run for it (or refused it)."""

    refused: str | None = None
    """Why no run was started for it (its payload annotation could not be used)."""


class NotStarted(ResourceModel):
    """A scheduled time the cursor passed without starting a run for it."""

    scheduled_for: Instant
    """The scheduled time."""

    reason: str
    """Why it did not run: Missed, ConcurrencyForbid, Excluded, or Superseded (Queue)."""

    kind: Literal["scheduled", "catch-up"] = "scheduled"
    """The kind of run it would have been."""

    excluded_by: str | None = Field(default=None, max_length=300, exclude_if=lambda v: v is None)
    """For Excluded: the calendar that excluded it (ScheduleCalendar NAME, or
    spec.exclude)."""


class FailureStreak(ResourceModel):
    """Consecutive failed runs, and a suspension after too many (spec.failurePolicy)."""

    consecutive: int = Field(default=0, ge=0)
    """Failed runs in a row, counted in the order they finished; a success resets it."""

    counted_through: Instant | None = None
    """When the newest run counted finished: runs that finish later are counted next."""

    counted_at_through: list[str] = Field(default_factory=list, max_length=100)
    """The runs counted that finished at countedThrough itself (to count each once)."""

    suspended_at: Instant | None = None
    """When the count reached suspendAfterConsecutiveFailures; null while not suspended."""

    suspended_generation: int | None = None
    """The metadata.generation when suspended: any spec edit after it resumes."""

    resumed: str | None = None
    """The last value of the triggers.dev/resume annotation handled."""


class QueuedRun(ResourceModel):
    """A due time held by concurrencyPolicy Queue until the active runs finish."""

    scheduled_for: Instant
    """The scheduled time held."""

    kind: str
    """How it came to be due: scheduled or catch-up."""

    held_at: Instant
    """When it was held."""


class BackfillPhase(StrEnum):
    """Where a backfill stands."""

    RUNNING = "Running"
    COMPLETE = "Complete"
    INVALID = "Invalid"


class BackfillStatus(ResourceModel):
    """The progress of the last backfill asked for (the triggers.dev/backfill annotation)."""

    id: str
    """The request's id; a new id is a new backfill."""

    phase: BackfillPhase
    """Running, Complete, or Invalid (the request could not be read or planned)."""

    start: Instant | None = Field(default=None, alias="from")
    """The first instant of the range."""

    end: Instant | None = Field(default=None, alias="to")
    """The last instant of the range (inclusive)."""

    planned: int = Field(default=0, ge=0)
    """How many times the backfill starts."""

    left: int = Field(default=0, ge=0)
    """How many times in the range it leaves as they are (already run, skipped, beyond
    maxRuns); `leftByReason` counts them by reason."""

    left_by_reason: dict[str, int] = Field(default_factory=dict)
    """The times left, by reason: AlreadyRan, Skipped, MaxRuns."""

    started: int = Field(default=0, ge=0)
    """How many runs it has started so far."""

    succeeded: int = Field(default=0, ge=0)
    """How many of its runs succeeded."""

    failed: int = Field(default=0, ge=0)
    """How many of its runs failed."""

    cancelled: int = Field(default=0, ge=0)
    """How many of its runs were deleted before they finished."""

    concurrency: int = Field(default=1, ge=1)
    """How many of its runs may be active at once."""

    pending: list[Instant] = Field(default_factory=list, max_length=1000)
    """The times still to start, oldest first."""

    active: list[str] = Field(default_factory=list, max_length=100)
    """Its runs that have started and not yet finished (Job names)."""

    message: str = ""
    """What it did, or why it could not."""


class TriggerStatus(ResourceModel):
    """What the operator observed and decided for this trigger."""

    observed_generation: int | None = None
    """The metadata.generation of the spec this status reflects."""

    next_run_at: Instant | None = None
    """The next scheduled time; the Job starts jitter seconds later. Null when nothing is
    scheduled: suspended, completed, or invalid."""

    upcoming_runs: list[Instant] = Field(default_factory=list)
    """The next few scheduled times, for people and dashboards."""

    last_schedule_time: Instant | None = None
    """The scheduled time of the most recently started run."""

    last_successful_time: Instant | None = None
    """When the most recent successful run finished."""

    last_run: LastRun | None = None
    """The most recently started run."""

    active: list[ActiveRun] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    """The runs of this trigger that have not finished."""

    missed_runs: int = Field(default=0, ge=0)
    """How many scheduled times were never started (operator down, past
    startingDeadlineSeconds, or left out by catchUp), since the trigger was created."""

    last_missed_time: Instant | None = None
    """The most recent scheduled time that was missed."""

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    """Ready (True when the trigger is valid and scheduled, with a reason such as
    Scheduled, Suspended, Completed, InvalidSchedule or InvalidTimeZone)."""

    cursor: Instant | None = None
    """The most recent scheduled time that has been handled (started, missed or skipped);
    the next times are computed from it."""

    schedule_hash: str | None = None
    """A fingerprint of schedule, runAt, timeZone, daylightSaving and suspend, to notice
    an edit or a resume."""

    spec_epoch: Instant | None = None
    """When the last edit of schedule, runAt, timeZone or daylightSaving, or resume, was
    noticed; times at or before it never fire. Null until the first such edit."""

    completed: bool = False
    """A one-time trigger: its runAt has been handled (started or missed)."""

    run_now: list[RunNowRecord] = Field(default_factory=list, max_length=RUN_NOW_HISTORY_LIMIT)
    """The most recent run-now annotation values handled, oldest first."""

    not_started: list[NotStarted] = Field(
        default_factory=list, max_length=NOT_STARTED_HISTORY_LIMIT
    )
    """The most recent scheduled times passed without a run, oldest first: written with
    the cursor that passes them, so that their ledger rows (skipped, missed) can be
    written again by any leader after a crash that lost them."""

    queued: QueuedRun | None = None
    """concurrencyPolicy Queue: the due time held while a run is active; null when none."""

    backfill: BackfillStatus | None = None
    """The last backfill asked for, and how far it has come."""

    failures: FailureStreak | None = None
    """Consecutive failed runs and the suspension they caused; only while
    spec.failurePolicy asks for suspension."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active_count(self) -> int:
        """How many runs are active (the ACTIVE column)."""
        return len(self.active)

    def handled_run_now(self, value: str) -> bool:
        """Whether a run has already been started for this run-now value."""
        return any(record.value == value for record in self.run_now)

    def with_not_started(self, passed: list[NotStarted]) -> TriggerStatus:
        """A copy that remembers `passed` too, forgetting the oldest beyond the limit."""
        if not passed:
            return self
        records = sorted([*self.not_started, *passed], key=lambda record: record.scheduled_for)
        return self.model_copy(update={"not_started": records[-NOT_STARTED_HISTORY_LIMIT:]})

    def with_run_now(
        self, value: str, *, handled_at: datetime, refused: str | None = None
    ) -> TriggerStatus:
        """A copy that remembers `value`, forgetting the oldest beyond the limit."""
        record = RunNowRecord(value=value, handled_at=handled_at, refused=refused)
        records = [*self.run_now, record]
        return self.model_copy(update={"run_now": records[-RUN_NOW_HISTORY_LIMIT:]})
