"""The admission policy of manifests/base, with real users: ServiceAccount tokens.

Whoever may create ScheduledTriggers could, without the policy, have the operator start
any Job (a privileged, hostNetwork pod) in a namespace where they may not create Jobs
themselves: the confused deputy of docs/security.md. With the policy installed, a trigger
can be created, its spec changed or a run-now set only by a user who may create Jobs in
its namespace. Each user here is a ServiceAccount whose kubeconfig carries nothing but
its token, so the API server authorizes the request as that user alone.

Also here: what a trigger may carry beyond the bounds the schema sees (the payload, and
the Job built from it) is reported on the trigger and never run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.fixtures.manifests import Install, InstallFactory
from tests.harness.accounts import account_kubeconfig, create_account, grant
from tests.harness.cluster import KubeCluster
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.models.api import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]

WITHOUT_THE_POLICY = """\
$patch: delete
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: trigger-operator-triggers
"""
TRIGGERS_ONLY = [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create"]}]
TRIGGERS_EDIT = [
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create", "get", "patch", "delete"]}
]
JOBS = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
MISSING = 'may not create jobs (group batch) in namespace "{namespace}"'


def _privileged(name: str) -> dict[str, Any]:
    """The escalation: a trigger whose Job asks for a privileged pod on the host network."""
    body = manifest(name, schedule="*/2 * * * * *")
    pod = body["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["containers"][0]["securityContext"] = {"privileged": True}
    return body


def _user(
    cluster: KubeCluster, namespace: str, name: str, rules: list[dict[str, Any]], tmp: Path
) -> KubeCluster:
    """A ServiceAccount granted `rules` in `namespace`, as a cluster client of its own."""
    create_account(cluster, namespace, name)
    grant(cluster, namespace, name, rules)
    kubeconfig = account_kubeconfig(cluster, namespace, name, tmp / f"{name}.kubeconfig")
    return KubeCluster(kubeconfig, cluster.kubectl_path, cluster.backend)


def _create(user: KubeCluster, namespace: str, body: dict[str, Any]) -> str:
    """`kubectl create` as `user`: its output, or its error."""
    return user.kubectl(
        "create", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False
    )


def _refusal(call: Callable[[], object]) -> str:
    """The API server's message refusing `call` (which must be refused)."""
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status in (403, 422), refused.value
    return str(json.loads(refused.value.body or "{}")["message"])


def _policy_enforced(user: KubeCluster, namespace: str, *, enforced: bool = True) -> None:
    """A policy takes effect, or stops, a moment after it is created or deleted: wait."""

    def refuses() -> bool:
        probe = manifest("probe", schedule="@daily")
        try:
            user.custom().create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, probe, dry_run="All"
            )
        except ApiException as error:
            return bool(error.status == 403)
        return False

    wait_for(
        lambda: refuses() == enforced,
        timeout=30,
        message=f"the admission policy {'refuses' if enforced else 'admits'} a trigger",
    )


def _operator(
    cluster: KubeCluster, installation: Install, served: str, operators: Start, tmp: Path
) -> OperatorProcess:
    """The operator on the installed ServiceAccount's token, serving `served`."""
    kubeconfig = account_kubeconfig(
        cluster, installation.namespace, installation.account, tmp / "operator.kubeconfig"
    )
    return operators(
        kubeconfig=kubeconfig,
        operator_namespace=installation.namespace,
        namespaces=f'["{served}"]',
    )


@pytest.mark.parametrize("policy", [False, True], ids=["without-policy", "with-policy"])
def test_a_user_who_may_not_create_jobs_gets_a_privileged_job_only_without_the_policy(
    cluster: KubeCluster,
    install: InstallFactory,
    more_namespaces: Callable[[str], str],
    operators: Start,
    tmp_path: Path,
    policy: bool,
) -> None:
    team = more_namespaces("team")
    installation = install(patches=[] if policy else [WITHOUT_THE_POLICY])
    installation.apply()
    author = _user(cluster, team, "author", TRIGGERS_ONLY, tmp_path)
    runner = _user(cluster, team, "runner", [*TRIGGERS_ONLY, *JOBS], tmp_path)
    _policy_enforced(author, team, enforced=policy)
    runs = Triggers(cluster, team)
    operator = _operator(cluster, installation, team, operators, tmp_path)

    # The author may not create Jobs, by RBAC...
    assert author.kubectl("auth", "can-i", "create", "jobs", "-n", team, check=False).startswith(
        "no"
    )
    refused = author.kubectl("create", "job", "direct", "--image=busybox", "-n", team, check=False)
    assert 'cannot create resource "jobs" in API group "batch"' in refused
    # ...and tries through a trigger.
    attempt = _create(author, team, _privileged("escalate"))
    # The runner may create Jobs: its trigger is admitted either way.
    assert "created" in _create(runner, team, manifest("allowed", schedule="*/2 * * * * *"))

    wait_for(lambda: len(runs.jobs("allowed")) >= 2, timeout=30, message="runs of allowed")
    if not policy:
        assert attempt.strip() == f"scheduledtrigger.{GROUP}/escalate created"
        (job, *_) = wait_for(lambda: runs.jobs("escalate"), timeout=30, message="a Job")
        pod = job.spec.template.spec
        assert pod.host_network is True
        assert pod.containers[0].security_context.privileged is True
    else:
        assert "denied request" in attempt
        assert MISSING.format(namespace=team) in attempt
        assert f'user "system:serviceaccount:{team}:author"' in attempt
        assert runs.jobs("escalate") == []
        listed: Any = runs.custom.list_namespaced_custom_object(GROUP, VERSION, team, PLURAL)
        assert not [t for t in listed["items"] if t["metadata"]["name"] == "escalate"]
    assert operator.running()


def test_spec_changes_and_run_now_need_job_rights_and_labels_do_not(
    cluster: KubeCluster,
    install: InstallFactory,
    more_namespaces: Callable[[str], str],
    tmp_path: Path,
) -> None:
    team = more_namespaces("team")
    install().apply()
    author = _user(cluster, team, "author", TRIGGERS_EDIT, tmp_path)
    runner = _user(cluster, team, "runner", [*TRIGGERS_EDIT, *JOBS], tmp_path)
    _policy_enforced(author, team)
    Triggers(cluster, team).create(manifest("nightly", schedule="0 2 * * *"))
    as_author, as_runner = Triggers(author, team), Triggers(runner, team)

    def run_now(value: str) -> dict[str, Any]:
        return {"metadata": {"annotations": {"triggers.dev/run-now": value}}}

    # Labels and other annotations start nothing: anyone who may patch triggers may.
    as_author.patch("nightly", {"metadata": {"labels": {"team": "a"}}})
    as_author.patch("nightly", {"metadata": {"annotations": {"owner": "a"}}})
    # A new spec or a run-now starts runs: refused, naming the missing permission.
    for patch in ({"spec": {"schedule": "*/2 * * * * *"}}, run_now("now-1")):
        message = _refusal(partial(as_author.patch, "nightly", patch))
        assert MISSING.format(namespace=team) in message
    assert as_author.get("nightly")["spec"]["schedule"] == "0 2 * * *"
    # With the permission to create Jobs, both are admitted.
    as_runner.patch("nightly", {"spec": {"schedule": "30 2 * * *"}})
    as_runner.patch("nightly", run_now("deploy-42"))
    assert (
        as_runner.get("nightly")["metadata"]["annotations"]["triggers.dev/run-now"] == "deploy-42"
    )
    # The run-now value is bounded, for everyone.
    for value in ("two words", "x" * 129, "-leading-dash", "a\nb"):
        message = _refusal(partial(as_runner.patch, "nightly", run_now(value)))
        assert "triggers.dev/run-now]: at most 128 characters" in message
    as_runner.patch("nightly", run_now("x" * 128))


def test_a_trigger_from_before_the_policy_keeps_running_but_its_author_can_no_longer_change_it(
    cluster: KubeCluster,
    install: InstallFactory,
    more_namespaces: Callable[[str], str],
    operators: Start,
    tmp_path: Path,
) -> None:
    team = more_namespaces("team")
    author = _user(cluster, team, "author", TRIGGERS_EDIT, tmp_path)
    # Written before the policy existed (another test's may still be in force for a moment).
    _policy_enforced(author, team, enforced=False)
    assert "created" in _create(author, team, manifest("earlier", schedule="*/2 * * * * *"))
    installation = install()
    installation.apply()
    _policy_enforced(author, team)
    runs, as_author = Triggers(cluster, team), Triggers(author, team)

    _operator(cluster, installation, team, operators, tmp_path)

    # The policy judges requests, not stored objects: the trigger runs (docs/security.md,
    # "Triggers that existed before the policy": audit them when installing it).
    wait_for(lambda: len(runs.jobs("earlier")) >= 2, timeout=30, message="runs of earlier")
    # Its author can no longer change what it runs, nor create it again once deleted.
    message = _refusal(lambda: as_author.patch("earlier", {"spec": {"payload": {"more": True}}}))
    assert MISSING.format(namespace=team) in message
    as_author.delete("earlier")
    assert MISSING.format(namespace=team) in _create(
        author, team, manifest("earlier", schedule="*/2 * * * * *")
    )


def test_a_payload_beyond_its_bounds_or_a_job_beyond_the_api_limit_is_reported_and_never_runs(
    triggers: Triggers, operators: Start
) -> None:
    triggers.create(manifest("huge", schedule="*/2 * * * * *", payload={"blob": "x" * 40_000}))
    # Within the payload's bounds, but copied into 40 containers: a Job over 1 MB.
    wide = manifest("wide", schedule="*/2 * * * * *", payload={"blob": "x" * 30_000})
    template = wide["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    template["containers"] = [{"name": f"c{n}", "image": "busybox"} for n in range(40)]
    triggers.create(wide)
    triggers.create(manifest("fine", schedule="*/2 * * * * *", payload={"blob": "x" * 30_000}))

    operators()

    def problem(name: str) -> dict[str, Any] | None:
        ready = triggers.ready(name)
        return ready if ready and ready["status"] == "False" else None

    huge = wait_for(lambda: problem("huge"), timeout=30, message="Ready=False on huge")
    wide_ready = wait_for(lambda: problem("wide"), timeout=30, message="Ready=False on wide")
    wait_for(lambda: len(triggers.jobs("fine")) >= 2, timeout=30, message="runs of fine")
    assert huge["reason"] == "InvalidSpec"
    assert huge["message"] == "spec.payload: Value error, 40012 bytes as JSON, more than 32768"
    assert wide_ready["reason"] == "InvalidJobTemplate"
    assert "more than the 1000000 the operator sends" in wide_ready["message"]
    assert triggers.jobs("huge") == [] and triggers.jobs("wide") == []
