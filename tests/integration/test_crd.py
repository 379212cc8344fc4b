"""The CRD on the real API server: admission rejects what a schema can see, and the
operator leaves no drift for GitOps tools (it owns status, nothing else)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for

pytestmark = pytest.mark.integration


def _rejection(triggers: Triggers, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as error:
        triggers.create(body)
    assert error.value.status == 422, error.value.body
    return str(json.loads(error.value.body or "{}")["message"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"schedule": "*/5 * * * *", "runAt": "2027-01-01T00:00:00Z"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"schedule": "*/5 * * * *", "schedules": ["0 9 * * *"]}, "exactly one of"),
        ({"schedules": ["0 9 * * *"], "runAt": "2027-01-01T00:00:00Z"}, "exactly one of"),
        ({"schedules": []}, "spec.schedules"),
        ({"schedules": ["0 9 * * *"] * 17}, "spec.schedules"),
        ({"schedule": "*/5 * * * *", "catchUp": "Sometimes"}, "spec.catchUp"),
        ({"schedule": "*/5 * * * *", "concurrencyPolicy": "Buffer"}, "spec.concurrencyPolicy"),
        (
            {"schedule": "*/5 * * * *", "startingDeadlineSeconds": -1},
            "spec.startingDeadlineSeconds",
        ),
        ({"schedule": "*/5 * * * *", "jitterSeconds": -5}, "spec.jitterSeconds"),
        ({"schedule": "*/5 * * * *", "maxCatchUpRuns": 0}, "spec.maxCatchUpRuns"),
        ({"runAt": "tomorrow at nine"}, "spec.runAt"),
        ({"runAt": "2027-01-01T09:00:00"}, "spec.runAt"),
        (
            {"schedule": "*/5 * * * *", "daylightSaving": {"repeatedTimes": "Thrice"}},
            "spec.daylightSaving.repeatedTimes",
        ),
        (
            {"schedule": "*/5 * * * *", "failurePolicy": {"suspendAfterConsecutiveFailures": 0}},
            "spec.failurePolicy.suspendAfterConsecutiveFailures",
        ),
    ],
    ids=[
        "both-schedule-and-runAt",
        "neither",
        "both-schedule-and-schedules",
        "both-schedules-and-runAt",
        "empty-schedules",
        "too-many-schedules",
        "catchUp-enum",
        "concurrencyPolicy-enum",
        "negative-deadline",
        "negative-jitter",
        "zero-maxCatchUpRuns",
        "runAt-not-a-date",
        "runAt-without-offset",
        "repeatedTimes-enum",
        "zero-suspendAfterConsecutiveFailures",
    ],
)
def test_admission_rejects_what_the_schema_can_see(
    triggers: Triggers, change: dict[str, Any], expected: str
) -> None:
    body = manifest("rejected")
    body["spec"].update(change)

    message = _rejection(triggers, body)

    assert expected in message


def test_kubectl_explain_describes_the_daylight_saving_fields(
    cluster: KubeCluster, crd: str
) -> None:
    text = cluster.kubectl("explain", "scheduledtrigger.spec.daylightSaving")
    assert "skippedTimes" in text
    assert "repeatedTimes" in text
    assert "RunAfterGap" in text


def test_operator_leaves_no_drift_and_owns_only_status(
    cluster: KubeCluster,
    triggers: Triggers,
    operators: Callable[..., OperatorProcess],
    tmp_path: Any,
) -> None:
    body = manifest("gitops", schedule="*/2 * * * * *", payload={"a": 1})
    body["metadata"]["namespace"] = triggers.namespace
    path = tmp_path / "trigger.yaml"
    path.write_text(yaml.safe_dump(body))
    cluster.kubectl("apply", "--server-side", "--field-manager=gitops-tool", "-f", str(path))
    before = triggers.get("gitops")
    operators()
    wait_for(lambda: len(triggers.jobs("gitops")) >= 2, timeout=30, message="two runs")

    after = triggers.get("gitops")
    dry_run = json.loads(
        cluster.kubectl(
            "apply",
            "--server-side",
            "--field-manager=gitops-tool",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            str(path),
        )
    )

    # Reconciling changed neither spec nor metadata: no new generation, no annotations,
    # labels or finalizers of the operator's (kopf's progress annotations included).
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    assert not after["metadata"].get("finalizers")
    # Re-applying the original manifest would change nothing in spec or metadata.
    assert dry_run["spec"] == after["spec"]
    assert dry_run["metadata"]["generation"] == after["metadata"]["generation"]
    assert dry_run["metadata"].get("annotations") == after["metadata"].get("annotations")
    # The operator's field manager appears only on the status subresource.
    operator_entries = [
        entry
        for entry in after["metadata"]["managedFields"]
        if entry["manager"] == "trigger-operator"
    ]
    assert operator_entries, "the operator wrote status"
    assert {entry.get("subresource") for entry in operator_entries} == {"status"}
    assert all(set(entry["fieldsV1"]) == {"f:status"} for entry in operator_entries)
    others = [e for e in after["metadata"]["managedFields"] if e["manager"] != "trigger-operator"]
    assert {e["manager"] for e in others} == {"gitops-tool"}


def test_printer_columns_show_schedule_next_run_and_active(
    cluster: KubeCluster, triggers: Triggers, operators: Callable[..., OperatorProcess]
) -> None:
    triggers.create(manifest("columns", schedule="*/2 * * * * *"))
    operators()
    wait_for(
        lambda: triggers.status("columns").get("lastScheduleTime"), timeout=30, message="a run"
    )

    table = cluster.kubectl("get", "strig", "columns", "-n", triggers.namespace)
    header, row = table.strip().splitlines()[:2]

    for column in ("SCHEDULE", "TIMEZONE", "SUSPEND", "NEXT RUN", "LAST RUN", "ACTIVE", "AGE"):
        assert column in header
    assert "*/2 * * * * *" in row
    assert "UTC" in row
    assert "<invalid>" not in row
    assert triggers.status("columns")["nextRunAt"].endswith("Z")


def test_a_trigger_with_several_schedules_runs_their_union_and_shows_them(
    cluster: KubeCluster, triggers: Triggers, operators: Callable[..., OperatorProcess]
) -> None:
    # Every 2 s and every 3 s: the times of both, a time both share (every 6 s) once.
    body = manifest("several", successfulRunsHistoryLimit=50)
    body["spec"]["schedules"] = ["*/2 * * * * *", "*/3 * * * * *"]
    triggers.create(body)
    operators()
    wait_for(lambda: len(triggers.jobs("several")) >= 6, timeout=40, message="six runs")

    times = triggers.scheduled_times("several")
    seconds = [int(stamp[17:19]) for stamp in times]
    assert len(times) == len(set(times)), "a shared time runs once"
    assert all(s % 2 == 0 or s % 3 == 0 for s in seconds)
    assert any(s % 6 == 0 for s in seconds) and any(s % 6 in (2, 4) for s in seconds)
    table = cluster.kubectl("get", "strig", "several", "-n", triggers.namespace)
    header, row = table.strip().splitlines()[:2]
    assert "SCHEDULES" in header
    assert "*/2 * * * * *" in row and "*/3 * * * * *" in row
