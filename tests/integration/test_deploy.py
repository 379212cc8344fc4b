"""The manifests on the real control plane: they apply, they run, and their RBAC is enough.

Each test installs `manifests/base` into its own namespace through a throwaway overlay
that renames the namespace and suffixes every name (the ClusterRoles and bindings are
cluster-wide, so tests must not share them). The operator then runs as a process whose
only credential is a token of the installed ServiceAccount, so every call it makes is
authorized by the manifests' RBAC, exactly as in a pod. No image can run here: the
Deployment's pods live on kwok's simulated nodes, and one of them lends its name to the
operator process for revision discovery.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.fixtures.manifests import BASE, Install, InstallFactory, exists, render
from tests.harness.accounts import account_kubeconfig
from tests.harness.cluster import KubeCluster
from tests.harness.http import get
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.devcluster.cluster import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
POSTGRES = REPO / "manifests" / "overlays" / "postgres"
NAMESPACED = REPO / "manifests" / "overlays" / "namespaced"
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
IMAGE = "ghcr.io/trigger-operator/trigger-operator:0.1.0"
LEASE = "trigger-operator-leader"
SKIPPED = "not allowed to act on this trigger; skipping it"
RESTMAPPING_LAG = "cannot find RESTMapping"
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}

Start = Callable[..., OperatorProcess]

# Deleting the writer binding and granting the writer ClusterRole per namespace is the
# documented way to confine the operator's writes (docs/deploy.md).
WITHOUT_CLUSTER_WIDE_WRITES = """\
$patch: delete
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: trigger-operator-writer
"""


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _wait_available(cluster: KubeCluster, install: Install) -> list[Any]:
    """The Deployment's two replicas are up; returns their pods."""
    name = install.name("trigger-operator")
    apps, core = cluster.apps(), cluster.core()

    def two_available() -> bool:
        status = apps.read_namespaced_deployment(name, install.namespace).status
        return status is not None and status.available_replicas == 2

    wait_for(
        two_available,
        timeout=60,
        message=f"Deployment {name} 2/2 available",
    )
    pods = core.list_namespaced_pod(
        install.namespace, label_selector="app.kubernetes.io/component=operator"
    ).items
    return [pod for pod in pods if pod.metadata and not pod.metadata.deletion_timestamp]


def _lines(process: OperatorProcess, message: str) -> list[str]:
    return [line for line in process.logs().splitlines() if message in line]


def _field(line: str, key: str) -> str | None:
    found = re.search(rf'(?:^| ){key}=("(?:[^"\\]|\\.)*"|\S+)', line)
    return found.group(1).strip('"') if found else None


# -- what the manifests say ------------------------------------------------------------------


def test_base_renders_the_crd_from_crds_and_a_hardened_two_replica_deployment(
    cluster: KubeCluster,
) -> None:
    objects = render(cluster, BASE)

    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == len(CRD_FILES)
    for path in CRD_FILES:
        committed = yaml.safe_load(path.read_text())
        crd = _one(objects, "CustomResourceDefinition", committed["metadata"]["name"])
        labels = crd["metadata"].pop("labels")
        assert crd == committed, f"the base must carry crds/{path.name} unchanged"
        assert labels["app.kubernetes.io/name"] == "trigger-operator"

    assert {o["metadata"].get("namespace") for o in objects if o["kind"] not in CLUSTER_SCOPED} == {
        "trigger-operator"
    }
    namespace = _one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    deployment = _one(objects, "Deployment", "trigger-operator")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert pod["serviceAccountName"] == "trigger-operator"
    assert container["image"] == IMAGE
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["TRIGGER_OPERATOR_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "trigger-operator-db",
        "key": "url",
        "optional": True,
    }
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    hardening = container["securityContext"]
    assert hardening["readOnlyRootFilesystem"] is True
    assert hardening["allowPrivilegeEscalation"] is False
    assert hardening["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The SQLite ledger lives on a writable volume, the only writable path besides /tmp.
    sqlite_dir = str(Path(env["TRIGGER_OPERATOR_SQLITE_PATH"]["value"]).parent)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[sqlite_dir]]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }

    selector = spec["selector"]["matchLabels"]
    pdb = _one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    service = _one(objects, "Service")
    assert service["spec"]["selector"] == selector
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "metrics")]


def test_postgres_overlay_requires_the_database_secret(cluster: KubeCluster) -> None:
    deployment = _one(render(cluster, POSTGRES), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["TRIGGER_OPERATOR_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "trigger-operator-db",
        "key": "url",
        "optional": False,
    }
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


# -- what the API server says ----------------------------------------------------------------


@pytest.mark.parametrize(
    "base", [BASE, POSTGRES, NAMESPACED], ids=["base", "postgres", "namespaced"]
)
def test_manifests_pass_a_server_side_dry_run(
    install: InstallFactory, more_namespaces: Callable[[str], str], base: Path
) -> None:
    installation = install(base, served=more_namespaces("team"))

    output = installation.apply(dry_run=True)

    for obj in installation.objects():
        assert f"{obj['metadata']['name']} serverside-applied (server dry run)" in output
    # A dry run creates nothing.
    assert not exists(
        lambda: installation.cluster.apps().read_namespaced_deployment(
            installation.name("trigger-operator"), installation.namespace
        )
    )


def test_applied_base_runs_two_replicas_admitted_as_restricted_pods(
    cluster: KubeCluster, install: InstallFactory
) -> None:
    installation = install()
    installation.apply()

    pods = _wait_available(cluster, installation)

    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.service_account_name == installation.account
        assert pod.spec.containers[0].image == IMAGE
    meta = cluster.core().read_namespace(installation.namespace).metadata
    assert meta is not None
    assert (meta.labels or {}).get("pod-security.kubernetes.io/enforce") == "restricted"

    def both_healthy() -> client.V1PodDisruptionBudgetStatus | None:
        status = (
            client.PolicyV1Api(cluster.api)
            .read_namespaced_pod_disruption_budget(
                installation.name("trigger-operator"), installation.namespace
            )
            .status
        )
        return status if status is not None and status.current_healthy == 2 else None

    pdb = wait_for(both_healthy, timeout=30, message="the PodDisruptionBudget sees both replicas")
    assert pdb.disruptions_allowed == 1
    service = cluster.core().read_namespaced_service(
        installation.name("trigger-operator-metrics"), installation.namespace
    )
    assert service.spec is not None
    assert [port.port for port in service.spec.ports or []][:1] == [8080]


# -- what the ServiceAccount may do --------------------------------------------------------


def _allowed(
    cluster: KubeCluster,
    installation: Install,
    verb: str,
    resource: str,
    *,
    namespace: str = "",
    group: str = "",
    subresource: str = "",
    name: str = "",
) -> bool:
    account = f"system:serviceaccount:{installation.namespace}:{installation.account}"
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=account,
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{installation.namespace}",
                "system:authenticated",
            ],
            resource_attributes=client.V1ResourceAttributes(
                verb=verb,
                group=group,
                resource=resource,
                subresource=subresource,
                namespace=namespace,
                name=name,
            ),
        )
    )
    answer = client.AuthorizationV1Api(cluster.api).create_subject_access_review(review)
    return answer.status is not None and bool(answer.status.allowed)


def test_service_account_may_do_what_the_operator_does_and_nothing_more(
    cluster: KubeCluster, install: InstallFactory
) -> None:
    installation = install()
    installation.apply()
    own = installation.namespace
    team = "some-team"  # any namespace: the RBAC is cluster-wide, it need not exist

    def may(verb: str, resource: str, **where: str) -> bool:
        return _allowed(cluster, installation, verb, resource, **where)

    triggers = {"group": "triggers.dev"}
    needed = [
        *((v, "scheduledtriggers", {**triggers, "namespace": team}) for v in ("get", "list")),
        # Cluster-wide, as kopf lists and watches when it serves every namespace.
        *((v, "scheduledtriggers", triggers) for v in ("list", "watch")),
        *((v, "schedulecalendars", {**triggers, "namespace": team}) for v in ("get", "list")),
        *((v, "schedulecalendars", triggers) for v in ("list", "watch")),
        *((v, "jobs", {"group": "batch"}) for v in ("list", "watch")),
        ("patch", "scheduledtriggers", {**triggers, "subresource": "status", "namespace": team}),
        (
            "update",
            "scheduledtriggers",
            {**triggers, "subresource": "finalizers", "namespace": team},
        ),
        *(
            (v, "jobs", {"group": "batch", "namespace": team})
            for v in ("get", "list", "watch", "create", "delete", "patch")
        ),
        ("create", "events", {"namespace": team}),
        ("watch", "leases", {"group": "coordination.k8s.io"}),
        ("create", "leases", {"group": "coordination.k8s.io", "namespace": own}),
        *(
            (v, "leases", {"group": "coordination.k8s.io", "namespace": own, "name": LEASE})
            for v in ("get", "update")
        ),
        ("create", "events", {"namespace": own}),
        ("get", "pods", {"namespace": own, "name": "trigger-operator-abc"}),
        ("get", "replicasets", {"group": "apps", "namespace": own, "name": "trigger-operator-x"}),
        ("watch", "customresourcedefinitions", {"group": "apiextensions.k8s.io"}),
        ("watch", "namespaces", {}),
        # /metrics: who sent the token, and may they get /metrics.
        ("create", "tokenreviews", {"group": "authentication.k8s.io"}),
        ("create", "subjectaccessreviews", {"group": "authorization.k8s.io"}),
    ]
    refused = [
        # Never the spec or the lifecycle of a trigger: GitOps owns those.
        *(
            (v, "scheduledtriggers", {**triggers, "namespace": team})
            for v in ("create", "update", "patch", "delete")
        ),
        # Calendars are only read.
        *(
            (v, "schedulecalendars", {**triggers, "namespace": team})
            for v in ("create", "update", "patch", "delete")
        ),
        ("update", "jobs", {"group": "batch", "namespace": team}),
        ("create", "pods", {"namespace": team}),
        ("get", "secrets", {"namespace": team}),
        ("get", "secrets", {"namespace": own, "name": "trigger-operator-db"}),
        ("list", "configmaps", {"namespace": team}),
        # Only its own Lease, only in its own namespace.
        ("update", "leases", {"group": "coordination.k8s.io", "namespace": "kube-system"}),
        ("create", "leases", {"group": "coordination.k8s.io", "namespace": team}),
        ("update", "leases", {"group": "coordination.k8s.io", "namespace": own, "name": "other"}),
        ("delete", "leases", {"group": "coordination.k8s.io", "namespace": own, "name": LEASE}),
        ("get", "pods", {"namespace": team, "name": "x"}),
        ("list", "pods", {"namespace": own}),
        ("patch", "deployments", {"group": "apps", "namespace": own}),
        ("create", "rolebindings", {"group": "rbac.authorization.k8s.io", "namespace": team}),
        ("update", "customresourcedefinitions", {"group": "apiextensions.k8s.io"}),
    ]

    missing = [(verb, res, where) for verb, res, where in needed if not may(verb, res, **where)]
    excess = [(verb, res, where) for verb, res, where in refused if may(verb, res, **where)]

    assert missing == [], f"the operator needs these: {missing}"
    assert excess == [], f"the operator must not have these: {excess}"


# -- the operator running on the installed RBAC only --------------------------------------


@pytest.mark.parametrize("base", [BASE, NAMESPACED], ids=["base", "namespaced"])
def test_operator_on_its_service_account_token_leads_runs_and_reports(
    cluster: KubeCluster,
    install: InstallFactory,
    more_namespaces: Callable[[str], str],
    operators: Start,
    tmp_path: Path,
    scraper_token: str,
    base: Path,
) -> None:
    team = more_namespaces("team")
    installation = install(base, served=team)
    installation.apply()
    pod = _wait_available(cluster, installation)[0]
    runs = Triggers(cluster, team)
    runs.create(manifest("tick", schedule="*/2 * * * * *", successfulRunsHistoryLimit=1))
    runs.create(manifest("guarded", schedule="*/2 * * * * *", concurrencyPolicy="Forbid"))
    broken = manifest("broken", schedule="*/5 * * * *")
    broken["spec"]["jobTemplate"] = {"spec": {"template": {"spec": {"containers": []}}}}
    runs.create(broken)
    kubeconfig = account_kubeconfig(
        cluster, installation.namespace, installation.account, tmp_path / "sa.kubeconfig"
    )

    # As in the Deployment: the pod's name and namespace, the watched namespace set.
    operator = operators(
        kubeconfig=kubeconfig,
        pod_name=pod.metadata.name,
        operator_namespace=installation.namespace,
        namespaces=f'["{team}"]',
        metrics_port=str(port := free_port()),
    )

    operator.wait_for_log("lease acquired", timeout=30)
    # /metrics: its TokenReview and SubjectAccessReview are allowed by the manifests.
    metrics = f"http://127.0.0.1:{port}/metrics"
    assert get(metrics)[0] == 401
    scraped = get(metrics, token=scraper_token)
    assert scraped[0] == 200 and "trigger_operator_leader 1.0" in scraped[1]
    (starting,) = _lines(operator, "operator starting")
    replica_set = pod.metadata.owner_references[0].name
    assert (_field(starting, "revision"), _field(starting, "revision_from")) == (
        "1",
        f"replicaset/{replica_set}",
    ), "revision found through the pod and its ReplicaSet"
    lease = cluster.coordination().read_namespaced_lease(LEASE, installation.namespace)
    assert lease.spec is not None and lease.spec.holder_identity == operator.name
    wait_for(
        lambda: any(
            e.reason == "LeaderAcquired"
            for e in cluster.core().list_namespaced_event(installation.namespace).items
        ),
        timeout=15,
        message="a LeaderAcquired Event in the operator's namespace",
    )

    # Runs start, status is written, and finished Jobs are pruned (deleted).
    first = wait_for(lambda: runs.jobs("tick"), timeout=30, message="a Job of tick")[0]
    wait_for(
        lambda: len(runs.scheduled_times("guarded")) >= 2,
        timeout=30,
        message="two Jobs of the Forbid trigger (its Jobs are listed before each start)",
    )
    wait_for(
        lambda: not exists(lambda: cluster.batch().read_namespaced_job(first.metadata.name, team)),
        timeout=30,
        message="the oldest Job of tick pruned by the history limit",
    )
    status = runs.status("tick")
    assert status["lastScheduleTime"] and status["nextRunAt"]
    assert (runs.ready("tick") or {}).get("status") == "True"

    # The invalid trigger: Ready=False from the dry-run create, and a Warning Event.
    ready = wait_for(
        lambda: (c := runs.ready("broken")) and c["status"] == "False" and c,
        timeout=30,
        message="Ready=False on the broken trigger",
    )
    assert ready["reason"] == "InvalidJobTemplate"
    events = wait_for(lambda: runs.events("broken"), timeout=15, message="a Warning Event")
    assert {(e.type, e.reason) for e in events} == {("Warning", "InvalidJobTemplate")}
    assert runs.jobs("broken") == []

    # Nothing was refused along the way (kopf's watches and discovery included). The
    # one refusal that is not about RBAC: right after the CRD is installed, the API
    # server's owner-reference admission may not know the kind yet; the operator
    # retries that, and it is no missing permission.
    lines = [line for line in operator.logs().splitlines() if RESTMAPPING_LAG not in line]
    for refusal in ("Forbidden", "forbidden", "Not enough permissions"):
        assert not [line for line in lines if refusal in line], f"{refusal!r} in the log"
    assert operator.running()


def test_trigger_where_the_operator_may_not_write_is_logged_and_skipped(
    cluster: KubeCluster,
    install: InstallFactory,
    more_namespaces: Callable[[str], str],
    operators: Start,
    tmp_path: Path,
) -> None:
    installation = install(patches=[WITHOUT_CLUSTER_WIDE_WRITES])
    installation.apply()
    allowed, denied = more_namespaces("a"), more_namespaces("b")
    cluster.rbac().create_namespaced_role_binding(
        allowed,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="trigger-operator-writer"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name=installation.name("trigger-operator-writer"),
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="ServiceAccount",
                    name=installation.account,
                    namespace=installation.namespace,
                )
            ],
        ),
    )
    in_a, in_b = Triggers(cluster, allowed), Triggers(cluster, denied)
    in_a.create(manifest("runs", schedule="*/2 * * * * *"))
    refused_uid = in_b.create(manifest("refused", schedule="*/2 * * * * *"))["metadata"]["uid"]
    kubeconfig = account_kubeconfig(
        cluster, installation.namespace, installation.account, tmp_path / "sa.kubeconfig"
    )

    # Cluster-wide, as the Deployment runs: it sees every trigger in the cluster, and its
    # RBAC alone keeps it from writing anywhere but A (and its own namespace).
    operator = operators(
        kubeconfig=kubeconfig, operator_namespace=installation.namespace, namespaces="[]"
    )

    def refusals() -> list[str]:
        return [line for line in _lines(operator, SKIPPED) if f"uid={refused_uid}" in line]

    wait_for(refusals, timeout=30, message=lambda: f"{SKIPPED!r} for B in\n{operator.logs()}")
    (skipped,) = refusals()
    assert (_field(skipped, "namespace"), _field(skipped, "trigger")) == (denied, "refused")
    assert "cannot create resource" in (_field(skipped, "error") or "")
    # The trigger in A keeps firing after B was refused...
    seen = len(in_a.jobs("runs"))
    wait_for(
        lambda: len(in_a.jobs("runs")) >= seen + 3,
        timeout=30,
        message="three more runs in the writable namespace",
    )
    # ...while B was not retried in a storm (backing off from 10 s), and left untouched.
    stamps = [datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")) for line in refusals()]
    assert len(stamps) <= 3
    assert all(b - a >= timedelta(seconds=9) for a, b in itertools.pairwise(stamps))
    assert in_b.jobs("refused") == []
    assert in_b.status("refused") == {}
    assert in_a.status("runs").get("lastScheduleTime")
    assert not [line for line in _lines(operator, SKIPPED) if f"namespace={allowed} " in line]
    assert not [line for line in _lines(operator, "reconcile failed") if refused_uid in line]
    assert operator.running()


def test_namespaced_overlay_confines_the_operator_to_its_namespaces(
    cluster: KubeCluster,
    install: InstallFactory,
    more_namespaces: Callable[[str], str],
    operators: Start,
    tmp_path: Path,
) -> None:
    team, other = more_namespaces("team"), more_namespaces("other")
    installation = install(NAMESPACED, served=team)
    installation.apply()
    kubeconfig = account_kubeconfig(
        cluster, installation.namespace, installation.account, tmp_path / "sa.kubeconfig"
    )
    inside, outside = Triggers(cluster, team), Triggers(cluster, other)
    inside.create(manifest("inside", schedule="*/2 * * * * *"))
    outside.create(manifest("outside", schedule="*/2 * * * * *"))

    def may(verb: str, resource: str, **where: str) -> bool:
        return _allowed(cluster, installation, verb, resource, **where)

    triggers, batch = {"group": "triggers.dev"}, {"group": "batch"}
    status = {**triggers, "subresource": "status"}
    for verb, resource, where in [
        ("create", "jobs", batch),
        ("delete", "jobs", batch),
        ("list", "jobs", batch),
        ("watch", "scheduledtriggers", triggers),
        ("patch", "scheduledtriggers", status),
        ("create", "events", {}),
    ]:
        assert may(verb, resource, namespace=team, **where), (verb, resource, team)
        assert not may(verb, resource, namespace=other, **where), (verb, resource, other)
        assert not may(verb, resource, **where), (verb, resource, "cluster-wide")

    # Told to serve both namespaces, on the overlay's token only: it runs the trigger in
    # its own namespace and is refused everything in the other.
    operator = operators(
        kubeconfig=kubeconfig,
        operator_namespace=installation.namespace,
        namespaces=f'["{team}", "{other}"]',
    )
    wait_for(lambda: len(inside.jobs("inside")) >= 2, timeout=30, message="runs inside")
    wait_for(
        lambda: [line for line in operator.logs().splitlines() if other in line and "403" in line],
        timeout=30,
        message=lambda: f"a refusal in {other} logged:\n{operator.logs()[-3000:]}",
    )
    assert outside.jobs("outside") == []
    assert outside.status("outside") == {}
    assert inside.status("inside").get("lastScheduleTime")
    assert operator.running()
