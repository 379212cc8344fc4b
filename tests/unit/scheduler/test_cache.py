"""The cache keeps what scheduling reads, compactly, and gives back the same trigger."""

from __future__ import annotations

import copy
from typing import Any

from trigger_operator.scheduler.cache import TriggerCache, compact

BODY: dict[str, Any] = {
    "apiVersion": "triggers.dev/v1alpha1",
    "kind": "ScheduledTrigger",
    "metadata": {
        "name": "nightly",
        "namespace": "team-a",
        "uid": "u-1",
        "resourceVersion": "41",
        "generation": 2,
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": '{"spec": "..."}',
            "triggers.dev/run-now": "first",
        },
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {}}},
    "status": {"observedGeneration": 2, "nextRunAt": "2026-11-27T02:00:00Z"},
}


def test_what_no_decision_reads_is_left_out_and_the_rest_kept() -> None:
    slim = compact(copy.deepcopy(BODY))

    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["annotations"] == {"triggers.dev/run-now": "first"}
    assert slim["spec"] == BODY["spec"]
    assert slim["status"] == BODY["status"]


def test_a_released_body_decodes_to_the_same_trigger_and_its_light_fields_stay() -> None:
    cache = TriggerCache()
    entry = cache.upsert_trigger(copy.deepcopy(BODY))
    before = copy.deepcopy(entry.body)

    entry.release_body()

    assert (entry.namespace, entry.name, entry.generation) == ("team-a", "nightly", 2)
    assert (entry.resource_version, entry.next_run_at) == ("41", "2026-11-27T02:00:00Z")
    assert entry.observed_generation == 2
    assert not entry.deleting
    assert entry.body == before


def test_an_older_copy_does_not_replace_a_newer_one() -> None:
    cache = TriggerCache()
    cache.upsert_trigger(copy.deepcopy(BODY))
    older = copy.deepcopy(BODY)
    older["metadata"]["resourceVersion"] = "40"
    older["spec"]["schedule"] = "0 3 * * *"

    entry = cache.upsert_trigger(older)

    assert entry.body["spec"]["schedule"] == "0 2 * * *"
    assert entry.resource_version == "41"
