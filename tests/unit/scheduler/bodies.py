"""Job and trigger bodies as the API server returns them, for the scheduler's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from trigger_operator.jobs.builder import LeaderIdentity, RunKind, TriggerRef, build_job
from trigger_operator.jobs.state import observe_job
from trigger_operator.scheduler.cache import TriggerEntry

UID = "0f3c2a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
TRIGGER = TriggerRef(namespace="team-a", name="nightly", uid=UID)
AT = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
TEMPLATE: dict[str, Any] = {
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "run"}]}}}
}


def job(
    scheduled_for: datetime = AT,
    *,
    kind: RunKind = RunKind.SCHEDULED,
    run_now: str | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Job as the API server returns it, created by leader pod-a at revision 3."""
    body = build_job(
        TRIGGER,
        TEMPLATE,
        scheduled_for=scheduled_for,
        kind=kind,
        writer=LeaderIdentity(identity="pod-a", revision=3),
        run_now_value=run_now,
    )
    body["metadata"]["uid"] = f"job-{body['metadata']['name']}"
    body["metadata"]["creationTimestamp"] = "2026-11-26T02:30:00Z"
    body["status"] = status or {}
    return body


def condition(kind: str, at: str, **extra: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "lastTransitionTime": at, **extra}


def entry(*jobs: dict[str, Any], status: dict[str, Any] | None = None) -> TriggerEntry:
    body = {
        "metadata": {"name": TRIGGER.name, "namespace": TRIGGER.namespace, "uid": UID},
        "status": status or {},
    }
    states = {state.name: state for state in map(observe_job, jobs)}
    return TriggerEntry(uid=UID, body=body, jobs=states)
