"""The container tier: the image `make image` builds, run as the Deployment runs it.

Skipped, with the reason printed, where no Docker engine answers (`make test` runs
scripts/ensure-docker.sh first, which installs and starts one as root). The image is
TRIGGER_OPERATOR_IMAGE when set (`make test` sets it to the image it has just built, and
then it must exist); otherwise this tier builds it with scripts/build-image.sh, whose warm
run takes seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.manifests import Install, InstallFactory
from tests.harness.cluster import KubeCluster
from tests.harness.container import OperatorContainer, PodRun, docker, docker_engine_unreachable
from trigger_operator.devcluster.cluster import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "trigger-operator:dev"

StartContainer = Callable[..., OperatorContainer]


@pytest.fixture(scope="session")
def image() -> str:
    reason = docker_engine_unreachable()
    if reason is not None:
        pytest.skip(f"the container tier needs Docker: {reason}")
    given = os.environ.get("TRIGGER_OPERATOR_IMAGE")
    if given:
        docker("image", "inspect", given)  # fails, not skips, when the build was lost
        return given
    build = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh")],
        env={**os.environ, "IMAGE": DEFAULT_IMAGE, "PIP": f"{sys.executable} -m pip"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert build.returncode == 0, f"make image failed:\n{build.stdout}{build.stderr}"
    return DEFAULT_IMAGE


@pytest.fixture
def deployment(image: str, cluster: KubeCluster, install: InstallFactory) -> Install:
    """manifests/base installed in the test's namespace, its two kwok pods up."""
    installation = install()
    installation.apply()
    return installation


@pytest.fixture
def containers(
    image: str,
    cluster: KubeCluster,
    deployment: Install,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[StartContainer]:
    """Start a container of the image for one pod of the installed Deployment."""
    started: list[OperatorContainer] = []
    ports: set[int] = set()

    def start(pod: Any, *, namespaces: list[str], **env: str) -> OperatorContainer:
        read = cluster.apps().read_namespaced_deployment
        spec = read(deployment.name("trigger-operator"), deployment.namespace)
        # A port free now may be the one handed to a container started a moment ago that
        # has not bound it yet: each container gets a port of its own.
        port = free_port()
        while port in ports:
            port = free_port()
        ports.add(port)
        run = PodRun.from_deployment(
            cluster,
            spec,
            pod=pod,
            workdir=tmp_path / pod.metadata.name,
            extra_env={
                "TRIGGER_OPERATOR_METRICS_PORT": str(port),
                "TRIGGER_OPERATOR_NAMESPACES": json.dumps(namespaces),
                **env,
            },
        )
        name = f"{pod.metadata.name}-{secrets.token_hex(2)}"
        container = OperatorContainer(image, run, name=name, metrics_port=port)
        started.append(container)
        return container.start()

    yield start
    failed = getattr(request.node, "rep_call", None)
    for container in started:
        if failed is not None and failed.failed:
            print(f"----- {container.name} log (tail) -----\n{container.logs()[-6000:]}")
        container.remove()
