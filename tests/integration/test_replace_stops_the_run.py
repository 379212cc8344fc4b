"""Replace stops the replaced run at once, even while something still holds its Job.

Found by the fault-injection suite: a leader deleted the active run of a Replace trigger
(ledger: `cancelled`) and was disrupted before it released the run-record finalizer;
with a background deletion the Job's pod kept running while the Job waited for its
finalizers, and the Job ended `Complete`: the run the ledger calls cancelled had run to
the end. Here a finalizer of the test's own holds the first Job for as long as the pod
would run, standing in for the operator's delayed release.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]
HOLD = "tests.triggers.dev/hold"


def _complete(job: object) -> bool:
    conditions = getattr(getattr(job, "status", None), "conditions", None) or []
    return any(c.type == "Complete" and c.status == "True" for c in conditions)


def test_a_replaced_run_stops_while_its_job_is_still_held(
    triggers: Triggers, operators: Start
) -> None:
    triggers.create(
        manifest(
            "replace",
            schedule="*/6 * * * * *",
            concurrencyPolicy="Replace",
            pod_annotations={"triggers.dev/simulate-duration": "9s"},
            successfulRunsHistoryLimit=100,
            failedRunsHistoryLimit=100,
        )
    )
    operators()
    first = wait_for(lambda: triggers.jobs("replace"), timeout=30, message="the first Job")[0]
    name = first.metadata.name
    triggers.batch.patch_namespaced_job(
        name, triggers.namespace, {"metadata": {"finalizers": [*first.metadata.finalizers, HOLD]}}
    )
    try:
        wait_for(
            lambda: (
                _meta(
                    triggers.batch.read_namespaced_job(name, triggers.namespace)
                ).deletion_timestamp
            ),
            timeout=30,
            message=f"{name} replaced (marked for deletion)",
        )
        # Past the moment its pod would have finished had it kept running.
        time.sleep(12)
        held = triggers.batch.read_namespaced_job(name, triggers.namespace)
        assert _meta(held).finalizers == [HOLD], "the operator released its finalizer"
        assert not _complete(held), f"the replaced run {name} ran to completion"
        pods = triggers.cluster.core().list_namespaced_pod(
            triggers.namespace, label_selector=f"job-name={name}"
        )
        assert not [p for p in pods.items if not _meta(p).deletion_timestamp], pods.items
    finally:
        job = triggers.batch.read_namespaced_job(name, triggers.namespace)
        kept = [f for f in _meta(job).finalizers or [] if f != HOLD]
        triggers.batch.patch_namespaced_job(
            name, triggers.namespace, {"metadata": {"finalizers": kept or None}}
        )


def _meta(obj: Any) -> Any:
    """An API object's metadata (the client types it optional; the server always sets it)."""
    assert obj.metadata is not None
    return obj.metadata
