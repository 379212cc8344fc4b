"""The image, run as manifests/base runs it, does the operator's whole job on the dev cluster.

Each test installs the base into its own namespace (its pods live on kwok's nodes) and
starts containers of the image standing for those pods (tests/harness/container.py):
the Deployment's user, read-only root filesystem, no capabilities, no-new-privileges,
its ServiceAccount's token and the CA at the in-cluster path, POD_NAME/POD_NAMESPACE of
a real pod, the ledger on a writable volume. What the API server and the ledger hold is
the evidence. Measured times are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.container.conftest import StartContainer
from tests.fixtures.manifests import Install
from tests.harness.cluster import KubeCluster
from tests.harness.container import OperatorContainer, docker
from tests.harness.http import get
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.models.instants import parse_instant

pytestmark = [pytest.mark.integration, pytest.mark.container]

LEASE = "trigger-operator-leader"
REVISION = "deployment.kubernetes.io/revision"
PERIOD = timedelta(seconds=2)
# What the image may weigh (docs/image.md): above its base, and in all.
ADDED_BUDGET_MB = 190
TOTAL_BUDGET_MB = 320


@pytest.fixture(autouse=True)
def _docker_first(image: str) -> None:
    """Where no Docker engine answers, skip before the cluster is started for nothing."""


def _ticking(name: str) -> dict[str, Any]:
    return manifest(
        name,
        schedule="*/2 * * * * *",
        catchUp="All",
        maxCatchUpRuns=100,
        startingDeadlineSeconds=30,
        successfulRunsHistoryLimit=1000,
    )


def _deployment(cluster: KubeCluster, installation: Install) -> Any:
    return cluster.apps().read_namespaced_deployment(
        installation.name("trigger-operator"), installation.namespace
    )


def _pods(cluster: KubeCluster, installation: Install, revision: str, count: int) -> list[Any]:
    """The `count` live pods of the Deployment's ReplicaSet of `revision`."""

    def exactly() -> list[Any] | None:
        replica_sets: list[Any] = (
            cluster.apps().list_namespaced_replica_set(installation.namespace).items
        )
        owners = {
            rs.metadata.name
            for rs in replica_sets
            if (rs.metadata.annotations or {}).get(REVISION) == revision
        }
        selector = "app.kubernetes.io/component=operator"
        listed: list[Any] = (
            cluster.core()
            .list_namespaced_pod(installation.namespace, label_selector=selector)
            .items
        )
        pods = [
            pod
            for pod in listed
            if pod.metadata.deletion_timestamp is None
            and any(ref.name in owners for ref in pod.metadata.owner_references or [])
        ]
        return sorted(pods, key=lambda p: p.metadata.name) if len(pods) == count else None

    return wait_for(exactly, timeout=60, message=f"{count} pods of revision {revision}")


def _holder(cluster: KubeCluster, namespace: str) -> str | None:
    try:
        lease: Any = cluster.coordination().read_namespaced_lease(LEASE, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def _wait_holder(cluster: KubeCluster, namespace: str, identity: str, timeout: float) -> float:
    began = time.monotonic()
    wait_for(
        lambda: _holder(cluster, namespace) == identity,
        timeout=timeout,
        interval=0.1,
        message=lambda: f"Lease held by {identity} (holder: {_holder(cluster, namespace)})",
    )
    return time.monotonic() - began


def _ledger_rows(url: str) -> tuple[list[Any], list[Any]]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            runs = connection.execute(
                sqlalchemy.text("SELECT trigger_name, status, job_name, leader_identity FROM runs")
            ).all()
            changes = connection.execute(
                sqlalchemy.text("SELECT event, identity FROM leadership_changes ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    return list(runs), list(changes)


def _assert_clean_exit(container: OperatorContainer) -> None:
    logs = container.logs()
    assert "lease released" in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-6000:]
    assert "InvalidStateError" not in logs, logs[-6000:]


def _serves_probes_and_metrics(container: OperatorContainer, probe_path: str, token: str) -> None:
    base = f"http://127.0.0.1:{container.metrics_port}"
    assert get(base + probe_path)[0] == 200
    assert get(base + "/metrics")[0] == 401
    status, body = get(base + "/metrics", token=token)
    assert status == 200 and "trigger_operator_leader 1.0" in body


def test_image_is_within_its_size_budget(image: str) -> None:
    def size(name: str) -> int:
        return int(docker("image", "inspect", "--format={{.Size}}", name).strip())

    label = '{{index .Config.Labels "org.opencontainers.image.base.name"}}'
    base = docker("image", "inspect", f"--format={label}", image).strip()
    total, added = size(image), size(image) - size(base)
    print(f"\nimage {image}: {total / 1e6:.0f} MB, {added / 1e6:.0f} MB above {base}")

    assert added <= ADDED_BUDGET_MB * 1e6
    assert total <= TOTAL_BUDGET_MB * 1e6


def test_image_as_the_deployment_runs_it_leads_dispatches_records_and_releases_on_docker_stop(
    cluster: KubeCluster,
    deployment: Install,
    containers: StartContainer,
    more_namespaces: Any,
    scraper_token: str,
) -> None:
    team = more_namespaces("team")
    runs = Triggers(cluster, team)
    runs.create(_ticking("tick"))
    spec = _deployment(cluster, deployment)
    grace = spec.spec.template.spec.termination_grace_period_seconds
    probe = spec.spec.template.spec.containers[0].liveness_probe.http_get.path
    (pod, _) = _pods(cluster, deployment, "1", 2)

    container = containers(pod, namespaces=[team])

    lead = _wait_holder(cluster, deployment.namespace, pod.metadata.name, timeout=60)
    print(f"\ncontainer start to Lease: {lead:.1f} s")
    wait_for(lambda: len(runs.jobs("tick")) >= 2, timeout=30, message="two Jobs of tick")
    # kwok's pods succeed at once; the leader sees the Job finish and says so in status.
    status = wait_for(
        lambda: (found := runs.status("tick")).get("lastSuccessfulTime") and found,
        timeout=30,
        message="lastSuccessfulTime in the status of tick",
    )
    assert status["lastScheduleTime"] and status["nextRunAt"]
    assert (runs.ready("tick") or {}).get("status") == "True"
    job = runs.jobs("tick")[0]
    assert job.metadata.annotations["triggers.dev/leader"] == pod.metadata.name
    assert job.metadata.annotations["triggers.dev/revision"] == "1"
    _serves_probes_and_metrics(container, probe, scraper_token)

    code, took = container.stop(grace=grace)
    print(f"docker stop: exit {code} after {took:.1f} s (grace {grace} s)")

    assert code == 0
    assert took < grace
    assert _holder(cluster, deployment.namespace) is None, "the Lease is released"
    _assert_clean_exit(container)
    ledger = container.run.volumes["ledger"] / "ledger.db"
    rows, changes = _ledger_rows(f"sqlite:///{ledger}")
    jobs = {j.metadata.name for j in runs.jobs("tick")}
    assert jobs <= {row.job_name for row in rows if row.trigger_name == "tick"}
    assert "succeeded" in {row.status for row in rows}, "a finished run recorded as such"
    assert {row.leader_identity for row in rows} == {pod.metadata.name}
    assert [(c.event, c.identity) for c in changes] == [
        ("acquired", pod.metadata.name),
        ("released", pod.metadata.name),
    ]


def test_image_writes_the_postgresql_ledger_and_a_second_sigterm_while_stopping_is_no_error(
    cluster: KubeCluster,
    deployment: Install,
    containers: StartContainer,
    more_namespaces: Any,
    postgres_url: str,
) -> None:
    team = more_namespaces("team")
    runs = Triggers(cluster, team)
    runs.create(_ticking("tick"))
    # The Secret the Deployment's TRIGGER_OPERATOR_DATABASE_URL refers to (docs/deploy.md).
    cluster.core().create_namespaced_secret(
        deployment.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="trigger-operator-db"),
            string_data={"url": postgres_url},
        ),
    )
    grace = _deployment(cluster, deployment).spec.template.spec.termination_grace_period_seconds
    (pod, _) = _pods(cluster, deployment, "1", 2)

    container = containers(pod, namespaces=[team])

    _wait_holder(cluster, deployment.namespace, pod.metadata.name, timeout=60)
    wait_for(lambda: len(runs.jobs("tick")) >= 2, timeout=30, message="two Jobs of tick")
    # SIGTERM, then SIGTERM again every few milliseconds until the process is gone, from
    # inside the container (docker kill is too slow for this): the repeats land while the
    # graceful stop is under way, as when a supervisor or a person repeats the signal. A
    # fixed second signal raced a stop that can finish in 12 ms; the loop cannot miss it.
    # The shell dies with the container's PID 1, so its own exit status says nothing.
    docker(
        "exec",
        container.name,
        "sh",
        "-c",
        "kill -TERM 1; while kill -TERM 1 2>/dev/null; do sleep 0.002; done",
        check=False,
    )
    code = container.wait(timeout=grace)

    assert code == 0
    assert container.logs().count("signal received: stopping") >= 2, "a repeat while stopping"
    _assert_clean_exit(container)
    assert _holder(cluster, deployment.namespace) is None
    rows, changes = _ledger_rows(postgres_url)
    jobs = {j.metadata.name for j in runs.jobs("tick")}
    assert jobs and jobs <= {row.job_name for row in rows}
    assert not (container.run.volumes["ledger"] / "ledger.db").exists(), "no SQLite beside it"
    assert [c.event for c in changes] == ["acquired", "released"]


def test_rollout_restart_containers_of_the_new_pods_supersede_the_old_with_no_missed_slot(
    cluster: KubeCluster,
    deployment: Install,
    containers: StartContainer,
    more_namespaces: Any,
) -> None:
    team = more_namespaces("team")
    runs = Triggers(cluster, team)
    runs.create(_ticking("tick"))
    namespace = deployment.namespace
    grace = _deployment(cluster, deployment).spec.template.spec.termination_grace_period_seconds
    old = {
        pod.metadata.name: containers(pod, namespaces=[team])
        for pod in _pods(cluster, deployment, "1", 2)
    }
    wait_for(lambda: _holder(cluster, namespace) in old, timeout=60, message="an old pod leads")
    wait_for(lambda: len(runs.jobs("tick")) >= 2, timeout=30, message="two Jobs of tick")

    cluster.kubectl(
        "rollout", "restart", f"deployment/{deployment.name('trigger-operator')}", "-n", namespace
    )
    new_pods = _pods(cluster, deployment, "2", 2)
    new = {pod.metadata.name: containers(pod, namespaces=[team]) for pod in new_pods}
    took = _wait_holder_among(cluster, namespace, set(new), timeout=60)
    print(f"\nnew revision leads {took:.1f} s after its containers started")
    # The old pods are gone: the kubelet would stop their containers now.
    for container in old.values():
        code, _ = container.stop(grace=grace)
        assert code == 0
        assert "Traceback" not in container.logs(), container.logs()[-6000:]
    leader = _holder(cluster, namespace)
    handed_over = max(
        parse_instant(j.metadata.annotations["triggers.dev/scheduled-for"])
        for j in runs.jobs("tick")
        if j.metadata.annotations["triggers.dev/revision"] == "1"
    )
    wait_for(
        lambda: (
            sum(j.metadata.annotations["triggers.dev/leader"] == leader for j in runs.jobs("tick"))
            >= 3
        ),
        timeout=30,
        message=f"three Jobs of the new leader {leader}",
    )

    jobs = runs.jobs("tick")
    times = Counter(
        parse_instant(j.metadata.annotations["triggers.dev/scheduled-for"]) for j in jobs
    )
    assert max(times.values()) == 1, "a slot run twice"
    first, last = min(times), max(times)
    slots = {first + PERIOD * i for i in range(int((last - first) / PERIOD) + 1)}
    assert set(times) == slots, f"missed: {sorted(str(t) for t in slots - set(times))}"
    after = {
        (
            j.metadata.annotations["triggers.dev/leader"],
            j.metadata.annotations["triggers.dev/revision"],
        )
        for j in jobs
        if parse_instant(j.metadata.annotations["triggers.dev/scheduled-for"]) > handed_over
    }
    assert after == {(leader, "2")}
    assert not runs.status("tick").get("missedRuns")


def _wait_holder_among(
    cluster: KubeCluster, namespace: str, identities: set[str], timeout: float
) -> float:
    began = time.monotonic()
    wait_for(
        lambda: _holder(cluster, namespace) in identities,
        timeout=timeout,
        interval=0.1,
        message=lambda: (
            f"Lease held by one of {identities} (holder: {_holder(cluster, namespace)})"
        ),
    )
    return time.monotonic() - began
