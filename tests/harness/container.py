"""Run the operator image as a pod of the Deployment would run it, with `docker run`.

`PodRun.from_deployment` reads the container and pod of a Deployment as the API server
holds it (the shipped `manifests/base`, installed by the test) and turns it into
`docker run` options the way the kubelet would:

- the pod's user and group, a read-only root filesystem, every capability dropped,
  `no-new-privileges` for `allowPrivilegeEscalation: false`, the args;
- the ServiceAccount's token (from the TokenRequest API), the cluster's CA and the
  namespace at /var/run/secrets/kubernetes.io/serviceaccount/, read-only, and
  KUBERNETES_SERVICE_HOST/PORT: in-cluster configuration, no kubeconfig;
- `env` resolved as the kubelet resolves it: plain values, the downward API's
  metadata.name/namespace of the pod the container stands for, and Secret keys (an
  optional Secret that is missing leaves the variable out);
- each emptyDir volume a fresh host directory owned by the pod's fsGroup (`sizeLimit`
  ones a tmpfs of that size).

What differs, and why: the container shares the host's network (`--network host`), since
the dev cluster's API server listens on 127.0.0.1 only (its serving certificate names
127.0.0.1); so the probe port is moved to a free one (`metrics_port`), for containers
running side by side. The caller names the namespaces to watch, so that the container
never touches other tests' triggers in a shared cluster.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes.client.exceptions import ApiException

from tests.harness.accounts import account_token
from tests.harness.cluster import KubeCluster

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def docker_engine_unreachable() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "the docker command is not installed (scripts/ensure-docker.sh installs it)"
    if probe.returncode != 0:
        return (
            "no Docker engine answers `docker info` (scripts/ensure-docker.sh starts one as "
            "root): " + (probe.stderr.strip().splitlines() or ["?"])[-1]
        )
    return None


def _api_server(cluster: KubeCluster) -> tuple[str, str, bytes]:
    """The API server's host, port and CA certificate, from the cluster's kubeconfig."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    entry = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    server = urlsplit(entry["cluster"]["server"])
    if "certificate-authority-data" in entry["cluster"]:
        ca = base64.b64decode(entry["cluster"]["certificate-authority-data"])
    else:
        ca = Path(entry["cluster"]["certificate-authority"]).read_bytes()
    assert server.hostname and server.port, f"no host and port in {server.geturl()}"
    return server.hostname, str(server.port), ca


@dataclass
class PodRun:
    """The `docker run` options of one pod of a Deployment."""

    options: list[str]
    args: list[str]
    volumes: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_deployment(
        cls,
        cluster: KubeCluster,
        deployment: Any,
        *,
        pod: Any,
        workdir: Path,
        extra_env: dict[str, str],
    ) -> PodRun:
        spec = deployment.spec.template.spec
        (container,) = spec.containers
        namespace = pod.metadata.namespace
        security = container.security_context
        pod_security = spec.security_context
        user = security.run_as_user or pod_security.run_as_user
        group = security.run_as_group or pod_security.run_as_group
        options = [f"--user={user}:{group}", "--network=host"]
        if security.read_only_root_filesystem:
            options.append("--read-only")
        for capability in security.capabilities.drop or []:
            options.append(f"--cap-drop={capability}")
        if security.allow_privilege_escalation is False:
            options.append("--security-opt=no-new-privileges")

        host, port, ca = _api_server(cluster)
        secrets = workdir / "serviceaccount"
        secrets.mkdir(parents=True, exist_ok=True)
        token = account_token(cluster, namespace, spec.service_account_name)
        for name, content in (("token", token), ("ca.crt", ca.decode()), ("namespace", namespace)):
            (secrets / name).write_text(content)
            (secrets / name).chmod(0o644)
        secrets.chmod(0o755)
        options.append(f"--volume={secrets}:{SERVICE_ACCOUNT_DIR}:ro")
        env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
        env.update(_resolve_env(cluster, container.env or [], pod))
        env.update(extra_env)
        options += [f"--env={key}={value}" for key, value in env.items()]

        run = cls(options=options, args=list(container.args or []))
        volumes = {volume.name: volume for volume in spec.volumes or []}
        for mount in container.volume_mounts or []:
            run._mount(mount, volumes[mount.name], workdir, pod_security.fs_group)
        return run

    def _mount(self, mount: Any, volume: Any, workdir: Path, fs_group: int | None) -> None:
        assert volume.empty_dir is not None, f"volume {volume.name}: only emptyDir is run here"
        limit = volume.empty_dir.size_limit
        if limit:
            size = limit.replace("Mi", "m").replace("Gi", "g")
            self.options.append(f"--tmpfs={mount.mount_path}:size={size},mode=1777")
            return
        # An emptyDir of a pod with an fsGroup: writable by that group.
        directory = workdir / f"volume-{volume.name}"
        directory.mkdir(parents=True, exist_ok=True)
        if fs_group is not None:
            os.chown(directory, -1, fs_group)
            directory.chmod(0o2775)
            self.options.append(f"--group-add={fs_group}")
        self.volumes[volume.name] = directory
        self.options.append(f"--volume={directory}:{mount.mount_path}")


def _resolve_env(cluster: KubeCluster, env: list[Any], pod: Any) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for item in env:
        if item.value is not None:
            resolved[item.name] = item.value
            continue
        source = item.value_from
        if source.field_ref is not None:
            path = source.field_ref.field_path
            assert path in ("metadata.name", "metadata.namespace"), path
            resolved[item.name] = getattr(pod.metadata, path.split(".")[1])
        elif source.secret_key_ref is not None:
            ref = source.secret_key_ref
            try:
                secret: Any = cluster.core().read_namespaced_secret(
                    ref.name, pod.metadata.namespace
                )
            except ApiException as error:
                if error.status == 404 and ref.optional:
                    continue
                raise
            resolved[item.name] = base64.b64decode(secret.data[ref.key]).decode()
        else:
            raise AssertionError(f"env {item.name}: source not run here: {source}")
    return resolved


class OperatorContainer:
    """One container of the image, started detached; removed by `remove()`."""

    def __init__(self, image: str, run: PodRun, *, name: str, metrics_port: int) -> None:
        self.image = image
        self.run = run
        self.name = name
        self.metrics_port = metrics_port
        self.started = False

    def start(self) -> OperatorContainer:
        docker(
            "run", "--detach", f"--name={self.name}", *self.run.options, self.image,
            *self.run.args,
        )  # fmt: skip
        self.started = True
        return self

    def logs(self) -> str:
        result = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, timeout=30
        )
        return result.stdout + result.stderr

    def running(self) -> bool:
        return docker("inspect", "--format={{.State.Running}}", self.name).strip() == "true"

    def stop(self, *, grace: int) -> tuple[int, float]:
        """`docker stop` with the pod's grace period: the exit code and seconds taken."""
        began = time.monotonic()
        docker("stop", f"--time={grace}", self.name, timeout=grace + 30)
        return self.exit_code(), time.monotonic() - began

    def exec(self, *command: str) -> str:
        return docker("exec", self.name, *command)

    def wait(self, timeout: float) -> int:
        return int(docker("wait", self.name, timeout=timeout).strip())

    def exit_code(self) -> int:
        return int(docker("inspect", "--format={{.State.ExitCode}}", self.name).strip())

    def remove(self) -> None:
        if self.started:
            docker("rm", "--force", self.name, check=False)
