"""Smoke tests that prove the harness is a real control plane, not a stand-in.

Each test exercises one controller or server feature the operator depends on:
kwok-run Jobs, the failure stage, the garbage collector, RBAC, optimistic
concurrency on Leases, and Deployment revisions under `kubectl rollout restart`.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster
from tests.harness.wait import wait_for

pytestmark = pytest.mark.integration


def _job(name: str, *, annotations: dict[str, str] | None = None) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="run", image="busybox")],
                ),
            ),
        ),
    )


def _job_condition(cluster: KubeCluster, namespace: str, name: str) -> str | None:
    status = cluster.batch().read_namespaced_job(name, namespace).status
    for condition in (status.conditions if status else None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def test_job_pod_is_scheduled_on_the_kwok_node_and_the_job_completes(
    cluster: KubeCluster, namespace: str
) -> None:
    cluster.batch().create_namespaced_job(namespace, _job("hello"))

    result = wait_for(
        lambda: _job_condition(cluster, namespace, "hello"),
        timeout=60,
        message="Job hello finished",
    )

    assert result == "Complete"
    pods = cluster.core().list_namespaced_pod(namespace, label_selector="job-name=hello").items
    assert len(pods) == 1
    [pod] = pods
    assert pod.spec is not None and pod.status is not None
    assert (pod.spec.node_name or "").startswith("kwok-node-")
    assert pod.status.phase == "Succeeded"


def test_job_whose_pod_is_annotated_for_failure_fails(cluster: KubeCluster, namespace: str) -> None:
    job = _job("doomed", annotations={"triggers.dev/simulate-failure": "true"})
    cluster.batch().create_namespaced_job(namespace, job)

    result = wait_for(
        lambda: _job_condition(cluster, namespace, "doomed"),
        timeout=60,
        message="Job doomed finished",
    )

    assert result == "Failed"


def test_deleting_an_owner_deletes_its_dependents(cluster: KubeCluster, namespace: str) -> None:
    core = cluster.core()
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    assert owner.metadata is not None
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )

    core.delete_namespaced_config_map(
        "owner", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    wait_for(dependent_gone, timeout=60, message="garbage collector deleted the dependent")


def test_service_account_without_role_binding_is_forbidden(
    cluster: KubeCluster, namespace: str
) -> None:
    core = cluster.core()
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    issued = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    assert issued.status is not None
    token = issued.status.token
    admin_config = cluster.api.configuration
    configuration = client.Configuration()
    configuration.host = admin_config.host
    configuration.ssl_ca_cert = admin_config.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(configuration))

    with pytest.raises(ApiException) as denied:
        as_nobody.list_namespaced_pod(namespace)

    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)


def test_lease_update_with_a_stale_resource_version_conflicts(
    cluster: KubeCluster, namespace: str
) -> None:
    leases = cluster.coordination()
    created = leases.create_namespaced_lease(
        namespace,
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
        ),
    )
    assert created.metadata is not None and created.spec is not None
    stale_version = created.metadata.resource_version
    created.spec.holder_identity = "b"
    leases.replace_namespaced_lease("leader", namespace, created)

    stale = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader", resource_version=stale_version),
        spec=client.V1LeaseSpec(holder_identity="c", lease_duration_seconds=15),
    )
    with pytest.raises(ApiException) as conflict:
        leases.replace_namespaced_lease("leader", namespace, stale)

    assert conflict.value.status == 409
    kept = leases.read_namespaced_lease("leader", namespace).spec
    assert kept is not None and kept.holder_identity == "b"


def _revisions(cluster: KubeCluster, namespace: str) -> dict[str, int]:
    sets = cluster.apps().list_namespaced_replica_set(namespace, label_selector="app=web").items
    revisions = {}
    for rs in sets:
        assert rs.metadata is not None and rs.metadata.name is not None
        revision = (rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision")
        if revision:
            revisions[rs.metadata.name] = int(revision)
    return revisions


def test_rollout_restart_creates_a_replica_set_with_the_next_revision(
    cluster: KubeCluster, namespace: str
) -> None:
    labels = {"app": "web"}
    deployment: Any = {  # a manifest: the client sends a dict as it is
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }
    cluster.apps().create_namespaced_deployment(namespace, deployment)
    first = wait_for(lambda: _revisions(cluster, namespace), timeout=60, message="first ReplicaSet")
    assert list(first.values()) == [1]

    cluster.kubectl("rollout", "restart", "deployment/web", "-n", namespace)

    def two_replica_sets() -> dict[str, int] | None:
        found = _revisions(cluster, namespace)
        return found if len(found) == 2 else None

    after = wait_for(
        two_replica_sets,
        timeout=60,
        message="a second ReplicaSet after rollout restart",
    )
    assert sorted(after.values()) == [1, 2]
    new_set = next(name for name, revision in after.items() if revision == 2)
    assert new_set not in first
