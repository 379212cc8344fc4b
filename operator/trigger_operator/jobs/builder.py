"""The Job of one run: its name and its body, from a trigger and a time.

Pure: the same (trigger uid, scheduled time) — or (trigger uid, run-now value) —
always gives the same name, which is what makes a run idempotent: creating it a
second time meets AlreadyExists instead of starting the run twice.

Names are DNS-1123 labels of at most 63 characters (the Job controller copies the
name into a label value, which has that limit): the trigger's name, truncated, then
a dash and ten characters of a SHA-256 digest of the uid and the run's key. The
digest keeps apart triggers whose names share a long prefix, and a trigger deleted
and re-created under the same name (new uid) never collides with its old Jobs.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NewType

from trigger_operator.models.api import API_VERSION, GROUP, KIND
from trigger_operator.models.instants import format_instant
from trigger_operator.models.runs import RunKind as RunKind
from trigger_operator.models.spec import payload_json

LABEL_TRIGGER = f"{GROUP}/trigger"
LABEL_TRIGGER_UID = f"{GROUP}/trigger-uid"
ANNOTATION_SCHEDULED_FOR = f"{GROUP}/scheduled-for"
ANNOTATION_LEADER = f"{GROUP}/leader"
ANNOTATION_REVISION = f"{GROUP}/revision"
ANNOTATION_RUN_KIND = f"{GROUP}/run-kind"
ANNOTATION_RUN_NOW = f"{GROUP}/run-now"
FINALIZER_RUN_RECORD = f"{GROUP}/run-record"
"""Keeps a run's Job, once deleted, until its time is behind the trigger's cursor: the
Job is the evidence that the time has started, so a Job deleted early (a TTL, a person)
must not vanish before status says the time is handled, or it would be started again."""

MAX_NAME = 63
_DIGEST = 10

JobName = NewType("JobName", str)


@dataclass(frozen=True)
class TriggerRef:
    """The identity of the trigger a Job belongs to."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class LeaderIdentity:
    """Who creates the Job: recorded on it, so every run names its leader and revision."""

    identity: str
    revision: int


def _prefix(trigger_name: str) -> str:
    # Trigger names are DNS-1123 subdomains (dots allowed); labels allow no dots.
    label = re.sub(r"[^a-z0-9-]", "-", trigger_name.lower())
    return label[: MAX_NAME - _DIGEST - 1].rstrip("-") or "run"


def label_value(text: str) -> str:
    """`text` cut to a valid label value (63 characters, alphanumeric at both ends)."""
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text[:63])


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:_DIGEST]


def scheduled_job_name(trigger: TriggerRef, scheduled_for: datetime) -> JobName:
    """The name of the Job for one scheduled time of one trigger."""
    return JobName(f"{_prefix(trigger.name)}-{_digest(trigger.uid, format_instant(scheduled_for))}")


def manual_job_name(trigger: TriggerRef, run_now_value: str) -> JobName:
    """The name of the Job started by one value of the run-now annotation."""
    return JobName(f"{_prefix(trigger.name)}-{_digest(trigger.uid, 'run-now', run_now_value)}")


def _environment(
    trigger: TriggerRef, job_name: str, scheduled_for: datetime, payload: Any | None
) -> list[dict[str, Any]]:
    env = [
        {"name": "TRIGGER_NAME", "value": trigger.name},
        {"name": "TRIGGER_NAMESPACE", "value": trigger.namespace},
        {"name": "TRIGGER_SCHEDULED_FOR", "value": format_instant(scheduled_for)},
        {"name": "TRIGGER_RUN_ID", "value": job_name},
    ]
    if payload is not None:
        env.append({"name": "TRIGGER_PAYLOAD", "value": payload_json(payload)})
    return env


def _with_environment(container: dict[str, Any], env: list[dict[str, Any]]) -> None:
    ours = {item["name"] for item in env}
    # Ours win: a template that sets TRIGGER_* itself would make runs lie about themselves.
    kept = [item for item in container.get("env") or [] if item.get("name") not in ours]
    container["env"] = [*kept, *env]


def build_job(
    trigger: TriggerRef,
    job_template: dict[str, Any],
    *,
    scheduled_for: datetime,
    kind: RunKind,
    writer: LeaderIdentity,
    payload: Any | None = None,
    run_now_value: str | None = None,
) -> dict[str, Any]:
    """The Job body for one run, ready to create (also for a server-side dry run)."""
    name = (
        manual_job_name(trigger, run_now_value)
        if run_now_value is not None
        else scheduled_job_name(trigger, scheduled_for)
    )
    template_meta = job_template.get("metadata") or {}
    labels = {
        **(template_meta.get("labels") or {}),
        LABEL_TRIGGER: label_value(trigger.name),
        LABEL_TRIGGER_UID: trigger.uid,
    }
    annotations = {
        **(template_meta.get("annotations") or {}),
        ANNOTATION_SCHEDULED_FOR: format_instant(scheduled_for),
        ANNOTATION_LEADER: writer.identity,
        ANNOTATION_REVISION: str(writer.revision),
        ANNOTATION_RUN_KIND: kind.value,
    }
    if run_now_value is not None:
        annotations[ANNOTATION_RUN_NOW] = run_now_value

    spec = copy.deepcopy(job_template.get("spec") or {})
    pod_template = spec.setdefault("template", {})
    pod_meta = pod_template.setdefault("metadata", {})
    pod_meta["labels"] = {
        **(pod_meta.get("labels") or {}),
        LABEL_TRIGGER: label_value(trigger.name),
        LABEL_TRIGGER_UID: trigger.uid,
    }
    env = _environment(trigger, name, scheduled_for, payload)
    pod_spec = pod_template.setdefault("spec", {})
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            _with_environment(container, env)

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": trigger.namespace,
            "labels": labels,
            "annotations": annotations,
            "finalizers": [FINALIZER_RUN_RECORD],
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": trigger.name,
                    "uid": trigger.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
