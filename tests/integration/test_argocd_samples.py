"""The Argo CD health check's samples are triggers as the real operator leaves them.

`deploy/argocd/resource_customizations/triggers.dev/ScheduledTrigger/testdata/` holds one
trigger per state the health check tells apart, as read back from the API server after
the operator handled it (or before it did, for the Progressing ones). This test makes
each of them again on the dev control plane and checks that the committed sample still
says what the operator says now: the same Ready status and reason, the same last-run
result, suspension and observed generation. So a change of the operator's status fails
here, until the samples are made again:

    make argocd-samples

writes them and, beside them, the expected results of the actions (only `managedFields`
is left out, and the namespace is called `team-a`); then run `go test ./...` in
`hack/argocd-lua` and update `health_test.yaml` where a message changed (job names and
times are new each time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy/argocd/resource_customizations/triggers.dev/ScheduledTrigger/testdata"
SAMPLE_NAMESPACE = "team-a"
PAST = "2026-01-01T00:00:00Z"
FAILING = {"triggers.dev/simulate-failure": "true"}


def _annotated(body: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    body["metadata"]["annotations"] = annotations
    return body


def _without_containers(body: dict[str, Any]) -> dict[str, Any]:
    body["spec"]["jobTemplate"] = {"spec": {"template": {"spec": {"containers": []}}}}
    return body


# file name (without .yaml) -> a trigger the operator handles before it is saved.
HANDLED: dict[str, dict[str, Any]] = {
    "healthy-scheduled": manifest("nightly-report", schedule="0 3 * * *"),
    "healthy-completed": manifest("one-time", run_at=PAST),
    "healthy-run-now": _annotated(
        manifest("on-demand", schedule="0 3 1 1 *"), {"triggers.dev/run-now": "argocd-1764540000"}
    ),
    "suspended": manifest("paused", schedule="0 3 * * *", suspend=True),
    "degraded-invalid-schedule": manifest("typo", schedule="61 * * * *"),
    "degraded-invalid-timezone": manifest(
        "far-away", schedule="0 3 * * *", timeZone="Mars/Olympus_Mons"
    ),
    "degraded-invalid-job-template": _without_containers(
        manifest("no-containers", schedule="0 3 * * *")
    ),
    "degraded-last-run-failed": manifest("flaky", run_at=PAST, pod_annotations=FAILING),
}


# The expected results of the Argo CD actions (actions/action_test.yaml): an input sample
# with the change the action makes. hack/argocd-lua runs the actions with os.time() at
# 1764547200, so run now sets "argocd-1764547200".
RUN_NOW_VALUE = "argocd-1764547200"


def _suspend(obj: dict[str, Any], value: bool) -> dict[str, Any]:
    return {**obj, "spec": {**obj["spec"], "suspend": value}}


def _run_now(obj: dict[str, Any]) -> dict[str, Any]:
    annotations = {**(obj["metadata"].get("annotations") or {})}
    annotations["triggers.dev/run-now"] = RUN_NOW_VALUE
    return {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}


# output file -> (input file, the action's change)
ACTION_RESULTS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "action-suspend-healthy-scheduled": ("healthy-scheduled", lambda o: _suspend(o, True)),
    "action-suspend-degraded-last-run-failed": (
        "degraded-last-run-failed",
        lambda o: _suspend(o, True),
    ),
    "action-resume-suspended": ("suspended", lambda o: _suspend(o, False)),
    "action-run-now-healthy-scheduled": ("healthy-scheduled", _run_now),
    "action-run-now-healthy-run-now": ("healthy-run-now", _run_now),
    "action-run-now-suspended": ("suspended", _run_now),
}


def _read(sample: str) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((SAMPLES / f"{sample}.yaml").read_text())
    return found


def _write(sample: str, obj: dict[str, Any]) -> None:
    (SAMPLES / f"{sample}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))


def _sample(found: dict[str, Any]) -> dict[str, Any]:
    sample = dict(found)
    metadata = dict(sample["metadata"])
    metadata.pop("managedFields", None)
    metadata["namespace"] = SAMPLE_NAMESPACE
    sample["metadata"] = metadata
    return sample


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return {}


def _what_health_reads(obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of a trigger the health check and the actions look at."""
    status = obj.get("status") or {}
    ready = _ready(obj)
    observed = status.get("observedGeneration")
    return {
        "status": bool(status),
        "observed": None if observed is None else observed >= obj["metadata"]["generation"],
        "ready": (ready.get("status"), ready.get("reason")),
        "last_run": (status.get("lastRun") or {}).get("result"),
        "suspend": obj["spec"].get("suspend", False),
        "run_now": (obj["metadata"].get("annotations") or {}).get("triggers.dev/run-now"),
        "run_now_handled": bool(status.get("runNow")),
    }


def _settled(triggers: Triggers, name: str) -> Callable[[], dict[str, Any] | None]:
    def settled() -> dict[str, Any] | None:
        found = triggers.get(name)
        status = found.get("status") or {}
        if status.get("observedGeneration") != found["metadata"]["generation"]:
            return None
        if not _ready(found) or status.get("active"):
            return None
        if found["spec"].get("runAt") and not status.get("lastRun"):
            return None  # a one-time run is still to be seen through
        if (found["metadata"].get("annotations") or {}).get("triggers.dev/run-now") and not (
            status.get("lastRun") and status.get("runNow")
        ):
            return None
        if status.get("lastRun", {}).get("result") == "Running":
            return None
        return found

    return settled


def test_argocd_samples_are_what_the_operator_writes(
    triggers: Triggers,
    operators: Callable[..., OperatorProcess],
    request: pytest.FixtureRequest,
) -> None:
    made: dict[str, dict[str, Any]] = {}
    made["progressing-new"] = triggers.create(manifest("just-applied", schedule="0 3 * * *"))
    for body in HANDLED.values():
        triggers.create(body)
    operator = operators()
    for sample, body in HANDLED.items():
        name = body["metadata"]["name"]
        made[sample] = wait_for(_settled(triggers, name), timeout=60, message=f"{name} settled")
    edited = HANDLED["healthy-scheduled"]["metadata"]["name"]
    operator.stop()
    # The operator is down when the spec changes: its status is of the generation before.
    made["progressing-edited"] = triggers.patch(edited, {"spec": {"schedule": "0 4 * * *"}})

    if request.config.getoption("--write-argocd-samples"):
        for sample, found in made.items():
            _write(sample, _sample(found))
        for result, (sample, change) in ACTION_RESULTS.items():
            _write(result, change(_read(sample)))

    for sample, found in made.items():
        assert _what_health_reads(_read(sample)) == _what_health_reads(found), sample
    for result, (sample, change) in ACTION_RESULTS.items():
        assert _read(result) == change(_read(sample)), f"{result} is {sample} after the action"
