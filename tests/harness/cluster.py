"""The cluster the integration tests run against, and clients for it.

`--cluster=dev` (the default) starts the project's own control plane for the session;
`--cluster=kind` uses pytest-kind (skipped when Docker or kind is missing);
`--kubeconfig PATH` uses an existing cluster as it is.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config


@dataclass
class KubeCluster:
    """A reachable API server: its kubeconfig, a kubectl, and a Python client."""

    kubeconfig: Path
    kubectl_path: str
    backend: str
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        result = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout + (result.stderr if not check else "")

    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)

    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)

    def apiextensions(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api)


def docker_engine_missing_reason() -> str | None:
    """Why the kind backend cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "Docker is not installed"
    if shutil.which("kind") is None:
        return "kind is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "no Docker engine is running (docker info failed)"
    return None
