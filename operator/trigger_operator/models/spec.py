"""`spec` of a ScheduledTrigger: what the user asks for.

The model checks what a schema can see (exactly one of `schedule` and `runAt`, enums,
bounds, the RFC 3339 shape of `runAt`), the same checks the CRD makes at admission, as
the CRD is generated from this model. What only code can check (the cron grammar, a real
IANA zone, a date that exists) is the schedule package's job, so that an invalid trigger
is still readable and can be reported on.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from trigger_operator.models.base import ResourceModel
from trigger_operator.models.calendar import CalendarName, Exclusions
from trigger_operator.models.instants import RFC3339_PATTERN


class ConcurrencyPolicy(StrEnum):
    """What to do when a run is due while earlier runs of the trigger are still active."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"
    QUEUE = "Queue"


class CatchUp(StrEnum):
    """Which missed times to start after the operator was down while the trigger was due."""

    LATEST = "Latest"
    ALL = "All"
    NONE = "None"


class SkippedTimes(StrEnum):
    """What to do with a wall-clock time that does not exist (clocks spring forward)."""

    RUN_AFTER_GAP = "RunAfterGap"
    SKIP = "Skip"


class RepeatedTimes(StrEnum):
    """What to do with a wall-clock time that occurs twice (clocks fall back)."""

    AUTO = "Auto"
    ONCE = "Once"
    TWICE = "Twice"


class DaylightSaving(ResourceModel):
    """How the schedule treats wall-clock times that daylight-saving changes skip or repeat."""

    skipped_times: SkippedTimes = SkippedTimes.RUN_AFTER_GAP
    """A time that does not exist because the clocks sprang forward. RunAfterGap (default):
    fire once at the first instant after the gap; several skipped times fire once together.
    Skip: do not fire."""

    repeated_times: RepeatedTimes = RepeatedTimes.AUTO
    """A time that occurs twice because the clocks fell back. Once: fire at the first
    occurrence only. Twice: fire at both. Auto (default): Twice when the hour field is `*`
    or `*/n` (an interval schedule), otherwise Once."""


class JobTemplateMetadata(ResourceModel):
    """Labels and annotations copied onto every Job of the trigger."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to each Job."""

    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations added to each Job."""


class JobTemplate(ResourceModel):
    """The Job each run creates, as `jobTemplate` in a batch/v1 CronJob."""

    metadata: JobTemplateMetadata = Field(default_factory=JobTemplateMetadata)
    """Labels and annotations for each Job; its name is derived from the trigger and the
    scheduled time."""

    spec: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """A batch/v1 JobSpec: pod template, backoffLimit (retries), activeDeadlineSeconds
    (timeout), podFailurePolicy. Checked by the API server with a dry-run create."""


# Enough for the shapes people combine (weekdays and weekends, a few fixed times); a
# union's count lists the first days of each zone segment, so its cost grows with this.
SCHEDULES_MAX = 16


class FailurePolicy(ResourceModel):
    """What to do about runs that keep failing."""

    suspend_after_consecutive_failures: int | None = Field(default=None, ge=1, le=1000)
    """Stop starting runs after this many runs in a row have failed: Ready=False, reason
    SuspendedAfterFailures, nextRunAt null; the spec is left as it is. A new value of the
    triggers.dev/resume annotation (`trigger-operator resume`) or any edit of the spec
    resumes; times that passed meanwhile are not run. A successful run resets the count.
    Unset: never suspend."""


class TriggerSpec(ResourceModel):
    """What the trigger runs and when."""

    model_config = ConfigDict(frozen=True)

    schedule: str | None = Field(default=None, min_length=1, max_length=256)
    """A cron expression read in `timeZone`: five fields (minute hour day-of-month month
    day-of-week) or six with seconds first; lists, ranges, steps, names (JAN, MON) and the
    macros @yearly @annually @monthly @weekly @daily @midnight @hourly; L (last day of
    the month), 5L (last Friday), 2#2 (second Tuesday), H (a value hashed from the
    trigger's uid). When both day-of-month and day-of-week are restricted, a day matches
    if either does. Exactly one of schedule, schedules and runAt is set."""

    schedules: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=SCHEDULES_MAX
    )
    """Several cron expressions, each as in `schedule`: the trigger fires at the union of
    their times, and a time two of them share runs once. Daylight-saving rules apply to
    each expression on its own. Exactly one of schedule, schedules and runAt is set."""

    run_at: str | None = Field(
        default=None,
        max_length=64,
        pattern=RFC3339_PATTERN,
        json_schema_extra={"format": "date-time"},
    )
    """A one-time run: an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:00:00Z.
    Fires once; a time already past when the trigger is created fires at once unless
    startingDeadlineSeconds has passed. Exactly one of schedule, schedules and runAt is
    set."""

    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    """The IANA time zone whose wall clock the schedule is read in, e.g. Europe/Berlin."""

    calendars: list[CalendarName] | None = Field(default=None, max_length=16)
    """Names of ScheduleCalendars in the trigger's namespace whose exclusions apply: a time
    any of them excludes does not run (ledger: skipped, reason Excluded). While one is
    missing, the trigger is not ready (reason CalendarNotFound) and does not run."""

    exclude: Exclusions | None = None
    """Exclusions of this trigger alone, as in a ScheduleCalendar, read in `timeZone`."""

    suspend: bool = False
    """Stop starting new runs; running Jobs continue. Times that pass while suspended are
    not started on resume."""

    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    """When a run is due while earlier runs are active. Allow (default): start it too.
    Forbid: skip this time. Replace: delete the active runs, then start it. Queue: hold
    this time (at most one; a newer one replaces it, recorded skipped as Superseded) and
    start it when the active runs have finished."""

    starting_deadline_seconds: int | None = Field(default=None, ge=0)
    """A run not started within this many seconds after its time (plus jitter) is missed
    instead of started. Unset: no deadline."""

    catch_up: CatchUp = CatchUp.LATEST
    """After the operator was down while times were due. Latest (default): start only the
    most recent. All: start each, the newest maxCatchUpRuns, oldest first. None: start none.
    Every time not started counts in status.missedRuns."""

    max_catch_up_runs: int = Field(default=10, ge=1, le=1000)
    """The most missed times catchUp: All starts at once."""

    jitter_seconds: int = Field(default=0, ge=0, le=86400)
    """Delay every run by a stable per-trigger amount in [0, jitterSeconds), derived from
    the trigger's uid, to spread triggers that share a schedule. 0: no delay."""

    daylight_saving: DaylightSaving = Field(
        default_factory=DaylightSaving, json_schema_extra={"default": {}}
    )
    """How wall-clock times skipped or repeated by daylight-saving changes fire."""

    payload: JsonValue = None
    """Any JSON value, handed to every run as the TRIGGER_PAYLOAD environment variable: at
    most 32768 bytes as JSON and 32 levels deep. Anyone who may read the Job or its pods
    sees it: never put a secret here; reference a Secret from the jobTemplate's containers
    (env valueFrom secretKeyRef) instead."""

    failure_policy: FailurePolicy | None = None
    """What to do about runs that keep failing (suspendAfterConsecutiveFailures)."""

    successful_runs_history_limit: int = Field(default=3, ge=0)
    """How many finished successful Jobs to keep in the cluster; the run ledger keeps all."""

    failed_runs_history_limit: int = Field(default=1, ge=0)
    """How many finished failed Jobs to keep in the cluster; the run ledger keeps all."""

    job_template: JobTemplate
    """The Job to create for each run."""

    @field_validator("payload")
    @classmethod
    def _bounded_payload(cls, payload: JsonValue) -> JsonValue:
        # Beyond this a payload is not a parameter but data: as one environment variable
        # of every container it would meet the kernel's 128 KiB limit on one variable,
        # and, copied into each container of the Job, the API server's object size limit.
        check_payload(payload)
        return payload

    @model_validator(mode="after")
    def _exactly_one_time_source(self) -> Self:
        given = (self.schedule, self.schedules, self.run_at)
        if sum(source is not None for source in given) != 1:
            raise ValueError(EXACTLY_ONE_MESSAGE)
        return self


EXACTLY_ONE_MESSAGE = "spec: exactly one of schedule, schedules and runAt must be set"
PAYLOAD_MAX_BYTES = 32_768
PAYLOAD_MAX_DEPTH = 32


def check_payload(payload: JsonValue) -> None:
    """Raise ValueError, saying why, when `payload` is beyond the bounds of a run's payload.

    The same bounds hold for `spec.payload` and for a run-now's own payload.
    """
    if payload is None:
        return
    if _depth(payload) > PAYLOAD_MAX_DEPTH:
        raise ValueError(f"more than {PAYLOAD_MAX_DEPTH} levels of nesting")
    size = len(payload_json(payload).encode())
    if size > PAYLOAD_MAX_BYTES:
        raise ValueError(f"{size} bytes as JSON, more than {PAYLOAD_MAX_BYTES}")


def payload_json(payload: JsonValue) -> str:
    """The payload as every run receives it in TRIGGER_PAYLOAD."""
    return json.dumps(payload, sort_keys=True)


def _depth(value: JsonValue) -> int:
    """Levels of nesting: 0 for a scalar, 1 for a flat list or object, and so on."""
    depth, level = 0, [value]
    while level:
        children: list[JsonValue] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        if any(isinstance(item, (dict, list)) for item in level):
            depth += 1
        level = children
        if depth > PAYLOAD_MAX_DEPTH:
            break
    return depth
