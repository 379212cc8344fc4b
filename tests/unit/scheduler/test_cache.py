"""The cache keeps what scheduling reads, compactly, and gives back the same trigger."""

from __future__ import annotations

import copy
from typing import Any

from trigger_operator.jobs.builder import ANNOTATION_SCHEDULED_FOR, LABEL_TRIGGER_UID
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


def _job(name: str, *, uid: str, version: str, trigger_uid: str = "u-1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": uid,
            "resourceVersion": version,
            "labels": {LABEL_TRIGGER_UID: trigger_uid},
            "annotations": {ANNOTATION_SCHEDULED_FOR: "2026-11-27T02:00:00Z"},
        },
        "spec": {},
        "status": {},
    }


def test_the_cache_holds_exactly_the_versions_it_has_of_triggers_and_jobs() -> None:
    cache = TriggerCache()
    cache.upsert_trigger(copy.deepcopy(BODY))
    cache.upsert_job(_job("nightly-1", uid="j-1", version="50"))
    cache.upsert_job(_job("orphan-1", uid="j-2", version="60", trigger_uid="u-gone"))
    newer = copy.deepcopy(BODY)
    newer["metadata"]["resourceVersion"] = "42"
    no_version = copy.deepcopy(BODY)
    del no_version["metadata"]["resourceVersion"]

    assert cache.holds("scheduledtriggers", BODY)
    assert not cache.holds("scheduledtriggers", newer)
    older = copy.deepcopy(BODY)
    older["metadata"]["resourceVersion"] = "40"
    assert cache.holds("scheduledtriggers", older)  # behind the copy held: nothing new
    assert not cache.holds("scheduledtriggers", no_version)
    assert not cache.holds(
        "scheduledtriggers", {**BODY, "metadata": {**BODY["metadata"], "uid": "u-2"}}
    )
    assert cache.holds("jobs", _job("nightly-1", uid="j-1", version="50"))
    assert not cache.holds("jobs", _job("nightly-1", uid="j-1", version="51"))
    assert not cache.holds("jobs", _job("nightly-1", uid="j-9", version="50"))  # re-created
    assert not cache.holds("jobs", _job("nightly-2", uid="j-3", version="50"))
    assert cache.holds("jobs", _job("orphan-1", uid="j-2", version="60", trigger_uid="u-gone"))


def test_a_body_replaced_during_a_pass_is_compressed_once_it_is_released() -> None:
    cache = TriggerCache()
    entry = cache.upsert_trigger(copy.deepcopy(BODY))
    newer = compact(copy.deepcopy(BODY))
    newer["metadata"]["resourceVersion"] = "42"
    newer["status"]["nextRunAt"] = "2026-11-28T02:00:00Z"
    entry.update(copy.deepcopy(newer))

    entry.release_body()
    assert entry.body == newer
    entry.release_body()  # released twice: the same JSON
    assert entry.body == newer
