"""Job names and bodies: deterministic, valid, readable, distinct; the run's context inside."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trigger_operator.jobs.builder import (
    LeaderIdentity,
    RunKind,
    TriggerRef,
    build_job,
    manual_job_name,
    scheduled_job_name,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
AT = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
REF = TriggerRef(
    namespace="team-a", name="nightly-report", uid="0b7e1c8e-aaaa-4bbb-8ccc-000000000001"
)
WRITER = LeaderIdentity(identity="operator-7d9f-abcde", revision=4)
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "report"}, "annotations": {"team": "a"}},
    "spec": {
        "backoffLimit": 3,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [
                    {
                        "name": "run",
                        "image": "busybox",
                        "env": [
                            {"name": "KEEP", "value": "1"},
                            {"name": "TRIGGER_NAME", "value": "x"},
                        ],
                    }
                ],
            }
        },
    },
}


def test_the_same_trigger_and_time_always_give_the_same_name() -> None:
    assert scheduled_job_name(REF, AT) == scheduled_job_name(REF, AT)
    assert scheduled_job_name(REF, AT) != scheduled_job_name(REF, AT + timedelta(seconds=1))


def test_the_name_starts_with_the_trigger_name_and_is_a_dns_label() -> None:
    name = scheduled_job_name(REF, AT)
    assert name.startswith("nightly-report-")
    assert DNS_LABEL.match(name)
    assert len(name) <= 63


def test_triggers_sharing_a_long_prefix_get_distinct_names() -> None:
    prefix = "a-very-long-trigger-name-that-goes-on-and-on-beyond-the-limit-of-labels"
    first = TriggerRef(namespace="n", name=prefix + "-one", uid="uid-1")
    second = TriggerRef(namespace="n", name=prefix + "-two", uid="uid-2")
    assert scheduled_job_name(first, AT) != scheduled_job_name(second, AT)
    assert len(scheduled_job_name(first, AT)) <= 63
    assert scheduled_job_name(first, AT).startswith("a-very-long-trigger-name")


def test_a_recreated_trigger_with_a_new_uid_never_reuses_old_names() -> None:
    again = TriggerRef(namespace=REF.namespace, name=REF.name, uid="another-uid")
    assert scheduled_job_name(again, AT) != scheduled_job_name(REF, AT)


def test_run_now_names_depend_on_the_value_only() -> None:
    assert manual_job_name(REF, "deploy-42") == manual_job_name(REF, "deploy-42")
    assert manual_job_name(REF, "deploy-42") != manual_job_name(REF, "deploy-43")
    assert manual_job_name(REF, "deploy-42") != scheduled_job_name(REF, AT)


@given(
    name=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True),
    seconds=st.integers(min_value=0, max_value=10**9),
)
def test_every_trigger_name_gives_a_valid_job_name(name: str, seconds: int) -> None:
    ref = TriggerRef(namespace="n", name=name, uid="u")
    job_name = scheduled_job_name(
        ref, datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    )
    assert DNS_LABEL.match(job_name), job_name
    assert len(job_name) <= 63


def test_the_body_carries_identity_owner_and_context() -> None:
    body = build_job(
        REF, TEMPLATE, scheduled_for=AT, kind=RunKind.SCHEDULED, writer=WRITER, payload={"r": 1}
    )
    meta = body["metadata"]

    assert meta["name"] == scheduled_job_name(REF, AT)
    assert meta["namespace"] == "team-a"
    assert meta["labels"] == {
        "app": "report",
        "triggers.dev/trigger": "nightly-report",
        "triggers.dev/trigger-uid": REF.uid,
    }
    assert meta["annotations"] == {
        "team": "a",
        "triggers.dev/scheduled-for": "2026-11-27T01:30:00Z",
        "triggers.dev/leader": "operator-7d9f-abcde",
        "triggers.dev/revision": "4",
        "triggers.dev/run-kind": "scheduled",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "triggers.dev/v1alpha1",
            "kind": "ScheduledTrigger",
            "name": "nightly-report",
            "uid": REF.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["spec"]["backoffLimit"] == 3
    pod = body["spec"]["template"]
    assert pod["metadata"]["labels"]["triggers.dev/trigger-uid"] == REF.uid


def test_every_container_gets_the_trigger_environment_and_keeps_its_own() -> None:
    body = build_job(
        REF, TEMPLATE, scheduled_for=AT, kind=RunKind.SCHEDULED, writer=WRITER, payload={"r": 1}
    )
    pod = body["spec"]["template"]["spec"]
    expected = {
        "TRIGGER_NAME": "nightly-report",
        "TRIGGER_NAMESPACE": "team-a",
        "TRIGGER_SCHEDULED_FOR": "2026-11-27T01:30:00Z",
        "TRIGGER_RUN_ID": body["metadata"]["name"],
        "TRIGGER_PAYLOAD": '{"r": 1}',
    }
    for container in (*pod["initContainers"], *pod["containers"]):
        env = {item["name"]: item["value"] for item in container["env"]}
        assert {k: env[k] for k in expected} == expected
    run_env = [item["name"] for item in pod["containers"][0]["env"]]
    assert run_env.count("TRIGGER_NAME") == 1
    assert "KEEP" in run_env


def test_without_payload_there_is_no_payload_variable_and_the_template_is_untouched() -> None:
    before = repr(TEMPLATE)
    body = build_job(REF, TEMPLATE, scheduled_for=AT, kind=RunKind.SCHEDULED, writer=WRITER)
    env = body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "TRIGGER_PAYLOAD" not in {item["name"] for item in env}
    assert repr(TEMPLATE) == before


def test_a_manual_run_is_named_by_its_value_and_says_so() -> None:
    body = build_job(
        REF,
        TEMPLATE,
        scheduled_for=AT,
        kind=RunKind.MANUAL,
        writer=WRITER,
        run_now_value="deploy-42",
    )
    assert body["metadata"]["name"] == manual_job_name(REF, "deploy-42")
    assert body["metadata"]["annotations"]["triggers.dev/run-now"] == "deploy-42"
    assert body["metadata"]["annotations"]["triggers.dev/run-kind"] == "manual"
