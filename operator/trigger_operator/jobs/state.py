"""What a Job says about its run, and which finished Jobs to prune.

Pure functions over Job bodies as plain dicts (as the API returns them), so the status
of a trigger can be rebuilt from the Jobs it owns rather than trusted from its last
status: the Jobs are the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trigger_operator.jobs.builder import (
    ANNOTATION_LEADER,
    ANNOTATION_REVISION,
    ANNOTATION_RUN_KIND,
    ANNOTATION_RUN_NOW,
    ANNOTATION_SCHEDULED_FOR,
    FINALIZER_RUN_RECORD,
    LABEL_TRIGGER_UID,
)
from trigger_operator.models.api import KIND
from trigger_operator.models.instants import parse_api_time
from trigger_operator.models.runs import RunKind
from trigger_operator.models.status import RunResult as RunResult

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ObservedJob:
    """One owned Job, reduced to what the trigger's status and the ledger need."""

    name: str
    uid: str
    namespace: str
    trigger_name: str
    trigger_uid: str
    scheduled_for: datetime | None
    result: RunResult
    kind: RunKind
    run_now: str | None
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    failed_pods: int
    deleting: bool
    # The Failed condition's reason and message (BackoffLimitExceeded, DeadlineExceeded).
    reason: str | None = None
    message: str | None = None
    # Who created the Job, from its annotations.
    leader: str | None = None
    revision: int | None = None
    # The Job's metadata.resourceVersion when this state was read.
    resource_version: str = ""
    # metadata.finalizers, in order (see `jobs.builder.FINALIZER_RUN_RECORD`).
    finalizers: tuple[str, ...] = ()
    # A manual run's TRIGGER_PAYLOAD as its Job hands it over (JSON text), for the ledger.
    # Kept for manual runs only: a scheduled run's is the spec's, and the cache holds every
    # Job of every trigger.
    payload: str | None = None

    @property
    def held(self) -> bool:
        """Deleted, but kept by the run-record finalizer until the operator releases it."""
        return self.deleting and FINALIZER_RUN_RECORD in self.finalizers


def _kind(value: Any) -> RunKind:
    try:
        return RunKind(value)
    except ValueError:
        return RunKind.SCHEDULED


def observe_job(job: dict[str, Any]) -> ObservedJob:
    """Read a Job body as a run."""
    metadata = job.get("metadata") or {}
    status = job.get("status") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    result = RunResult.RUNNING
    finished: datetime | None = None
    reason: str | None = None
    message: str | None = None
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            result = RunResult.SUCCEEDED
            finished = parse_api_time(
                status.get("completionTime") or condition.get("lastTransitionTime")
            )
        elif condition.get("type") == "Failed":
            result = RunResult.FAILED
            finished = parse_api_time(condition.get("lastTransitionTime"))
            reason = condition.get("reason") or None
            message = condition.get("message") or None
    owner: dict[str, Any] = next(
        (
            reference
            for reference in metadata.get("ownerReferences") or []
            if reference.get("kind") == KIND and reference.get("controller")
        ),
        {},
    )
    return ObservedJob(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        namespace=str(metadata.get("namespace", "")),
        trigger_name=str(owner.get("name", "")),
        trigger_uid=str(labels.get(LABEL_TRIGGER_UID, "")),
        scheduled_for=parse_api_time(annotations.get(ANNOTATION_SCHEDULED_FOR)),
        result=result,
        kind=_kind(annotations.get(ANNOTATION_RUN_KIND)),
        run_now=annotations.get(ANNOTATION_RUN_NOW),
        created=parse_api_time(metadata.get("creationTimestamp")),
        started=parse_api_time(status.get("startTime")),
        finished=finished,
        failed_pods=int(status.get("failed") or 0),
        deleting=bool(metadata.get("deletionTimestamp")),
        reason=reason,
        message=message,
        leader=annotations.get(ANNOTATION_LEADER) or None,
        revision=_revision(annotations.get(ANNOTATION_REVISION)),
        resource_version=str(metadata.get("resourceVersion", "")),
        finalizers=tuple(str(f) for f in metadata.get("finalizers") or ()),
        payload=_payload(job) if annotations.get(ANNOTATION_RUN_NOW) else None,
    )


def _payload(job: dict[str, Any]) -> str | None:
    """TRIGGER_PAYLOAD of the Job's first container that has it (the builder sets it on all)."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        for item in container.get("env") or []:
            if item.get("name") == "TRIGGER_PAYLOAD" and "value" in item:
                return str(item["value"])
    return None


def _revision(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _order(run: ObservedJob) -> tuple[datetime, str]:
    moment = run.finished or run.scheduled_for or run.created or _EPOCH
    return (moment, run.name)


def to_prune(
    runs: list[ObservedJob], *, keep_succeeded: int, keep_failed: int
) -> list[ObservedJob]:
    """Finished runs beyond the history limits, oldest first; running Jobs are never pruned."""
    doomed: list[ObservedJob] = []
    for result, keep in ((RunResult.SUCCEEDED, keep_succeeded), (RunResult.FAILED, keep_failed)):
        finished = sorted(
            (run for run in runs if run.result is result and not run.deleting), key=_order
        )
        excess = len(finished) - max(keep, 0)
        if excess > 0:
            doomed.extend(finished[:excess])
    return sorted(doomed, key=_order)
