"""The test harness: a real control plane per session, a fresh namespace per test.

Unit tests use none of these fixtures and never start a cluster. Integration tests
take `cluster` (started once per session, lazily) and `namespace`.
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster, docker_engine_missing_reason
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.manifests"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trigger-operator")
    group.addoption(
        "--cluster",
        choices=["dev", "kind"],
        default="dev",
        help="dev: the project's own control plane (default); kind: pytest-kind (needs Docker)",
    )
    group.addoption(
        "--write-argocd-samples",
        action="store_true",
        help="write the Argo CD health samples (tests/integration/test_argocd_samples.py)",
    )
    # `--kubeconfig PATH` (an existing cluster, used as it is) comes from pytest-kind.


def _log(line: str) -> None:
    print(f"[dev-cluster] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeCluster]:
    kubeconfig = request.config.getoption("--kubeconfig")
    backend = request.config.getoption("--cluster")
    if kubeconfig:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            from trigger_operator.devcluster import binaries

            kubectl = str(binaries.default().kubectl)
        yield KubeCluster(Path(kubeconfig).resolve(), kubectl, "external")
        return
    if backend == "kind":
        reason = docker_engine_missing_reason()
        if reason is not None:
            pytest.skip(f"--cluster=kind needs Docker and kind: {reason}")
        from pytest_kind import KindCluster

        kind = KindCluster(
            "trigger-operator-tests",
            kind_path=Path(shutil.which("kind") or "kind"),
            kubectl_path=Path(shutil.which("kubectl") or "kubectl"),
        )
        kind.create()
        try:
            yield KubeCluster(Path(kind.kubeconfig_path), str(kind.kubectl_path), "kind")
        finally:
            kind.delete()
        return

    from trigger_operator.devcluster import binaries
    from trigger_operator.devcluster.cluster import DevCluster

    built = binaries.ensure()
    dev = DevCluster(tmp_path_factory.mktemp("cluster"), built, log=_log)
    dev.start()
    try:
        yield KubeCluster(dev.kubeconfig, str(built.kubectl), "dev")
    finally:
        dev.stop()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")


@pytest.fixture
def namespace(cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"{_slug(request.node.name)}-{secrets.token_hex(3)}"
    core = cluster.core()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def default_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    # Pods are admitted only once the namespace's default ServiceAccount exists.
    wait_for(default_account, timeout=30, message=f"default ServiceAccount in {name}")
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture(scope="session")
def crd(cluster: KubeCluster) -> str:
    """The ScheduledTrigger CRD (and the ScheduleCalendar one), applied once per session and
    Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    name = "scheduledtriggers.triggers.dev"

    def established(crd_name: str) -> bool:
        status = cluster.apiextensions().read_custom_resource_definition(crd_name).status
        conditions = (status.conditions if status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for crd_name in (name, "schedulecalendars.triggers.dev"):
        wait_for(
            lambda crd_name=crd_name: established(crd_name),  # type: ignore[misc]
            timeout=30,
            message=f"CRD {crd_name} Established",
        )
    return name


@pytest.fixture
def triggers(cluster: KubeCluster, namespace: str, crd: str) -> Triggers:
    """ScheduledTriggers and Jobs in the test's namespace (CRD installed)."""
    return Triggers(cluster, namespace)


@pytest.fixture
def operators(
    cluster: KubeCluster, namespace: str, crd: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operator processes for the test's namespace; all are stopped afterwards."""
    started: list[OperatorProcess] = []

    def start(
        name: str = "operator", *, kubeconfig: Path | None = None, **env: str
    ) -> OperatorProcess:
        """`kubeconfig` runs it with other credentials (default: the cluster's admin)."""
        process = OperatorProcess(
            kubeconfig=kubeconfig or cluster.kubeconfig,
            namespace=namespace,
            workdir=tmp_path,
            name=name,
            # lower-case keys are settings (TRIGGER_OPERATOR_<KEY>); upper-case ones, such
            # as the downward API's POD_NAME, are passed as they are.
            env={
                key if key.isupper() else f"TRIGGER_OPERATOR_{key.upper()}": value
                for key, value in env.items()
            },
        )
        started.append(process)
        return process.start()

    yield start
    # Killed, not stopped: a graceful stop takes seconds per process, and what happens on
    # SIGTERM is the subject of tests of its own (test_leadership). SIGKILL also ends a
    # process that a test left stopped (SIGSTOP).
    for process in started:
        process.kill()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for process in started:
            print(f"----- {process.name} log (tail) -----\n{process.logs()[-8000:]}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The e2e test runs a tier of its own on kind (its subprocess allows 30 minutes); every
    # other test has pyproject's default time-out.
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(1800))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
