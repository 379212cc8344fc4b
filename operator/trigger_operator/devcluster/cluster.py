"""A real Kubernetes control plane on loopback, without Docker.

etcd, kube-apiserver (RBAC on, ServiceAccount admission), kube-controller-manager
(Job, garbage collector, Deployment/ReplicaSet, service-account tokens), kube-scheduler
and kwok (simulated nodes whose Job pods run and succeed, or fail when annotated) run
as local processes on free 127.0.0.1 ports, in one process group of their own so that
stopping the cluster stops every one of them.

The same code serves `make run` (a long-lived cluster under `.dev/`) and the tests (a
session fixture in a temporary folder). The binaries come from `binaries.ensure()`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trigger_operator.devcluster import pki
from trigger_operator.devcluster.binaries import Binaries

Log = Callable[[str], None]

NODE_NAME_PREFIX = "kwok-node-"


class ClusterError(RuntimeError):
    """The control plane did not come up (the message names the component and its log)."""


@dataclass
class ClusterState:
    """What a running cluster leaves on disk so that another process can find and stop it."""

    pgid: int
    apiserver_port: int
    etcd_port: int
    pids: dict[str, int]

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _reap_group(pgid: int) -> None:
    """Collect exited members of the group that are our own children (no zombies left)."""
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _pgid_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    _reap_group(pgid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the parenthesised command: state, ppid, pgrp, ...
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path, *, user: str, inline: bool) -> str:
    cluster: dict[str, Any] = {"server": server}
    credentials: dict[str, Any]
    if inline:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
        credentials = {
            "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
    else:
        cluster["certificate-authority"] = str(ca)
        credentials = {"client-certificate": str(cert), "client-key": str(key)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "trigger-dev", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "trigger-dev", "context": {"cluster": "trigger-dev", "user": user}}],
        "current-context": "trigger-dev",
    }
    return yaml.safe_dump(config, sort_keys=False)


class DevCluster:
    """One local control plane whose files live in `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        binaries: Binaries,
        *,
        nodes: int = 1,
        log: Log = print,
        controller_manager_flags: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.binaries = binaries
        self.nodes = nodes
        self.log = log
        # Extra flags, e.g. client rate limits for benchmarks.
        self.controller_manager_flags = list(controller_manager_flags)
        self.pki_dir = self.state_dir / "pki"
        self.logs_dir = self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self._state_file = self.state_dir / "cluster.json"
        self.state: ClusterState | None = None
        self._tls: ssl.SSLContext | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> None:
        """Start every component and return once a node is Ready."""
        self.stop_stale()
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        # A cluster is always fresh: stale etcd data would resurrect old objects.
        etcd_dir = self.state_dir / "etcd"
        if etcd_dir.exists():
            subprocess.run(["rm", "-rf", str(etcd_dir)], check=True)
        self.log("generating certificates")
        certs = pki.generate(self.pki_dir)
        self._tls = None  # new certificates: a new client context
        self._write_kubeconfigs(certs, apiserver_port := free_port())
        etcd_port, etcd_peer_port = free_port(), free_port()
        self.state = ClusterState(
            pgid=0, apiserver_port=apiserver_port, etcd_port=etcd_port, pids={}
        )
        try:
            self._spawn("etcd", self._etcd_args(etcd_dir, etcd_port, etcd_peer_port))
            self._wait_ok(f"http://127.0.0.1:{etcd_port}/health", "etcd", deadline=15)
            self._spawn("kube-apiserver", self._apiserver_args(certs, apiserver_port, etcd_port))
            self._wait_ok(
                f"{self.state.server}/readyz", "kube-apiserver", deadline=60, tls=self._admin_tls()
            )
            self._spawn("kube-controller-manager", self._controller_manager_args(certs))
            self._spawn("kube-scheduler", self._scheduler_args())
            self._spawn("kwok", self._kwok_args())
            self._create_nodes()
            self._wait_ready(deadline=max(10.0, timeout - (time.monotonic() - started)))
        except BaseException:
            self.stop()
            raise
        self.log(
            f"control plane ready in {time.monotonic() - started:.1f} s at {self.state.server}"
        )

    def stop(self) -> None:
        """Stop every component of this cluster (its whole process group)."""
        state = self.state or self._load_state()
        if state is None:
            return
        if state.pgid and _pgid_alive(state.pgid):
            self.log("stopping control plane")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pgid, signal.SIGTERM)
            # The data is thrown away: a short grace, then no waiting for kube-apiserver's
            # graceful request draining.
            deadline = time.monotonic() + 3
            while _pgid_alive(state.pgid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.1)
            if _pgid_alive(state.pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pgid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _pgid_alive(state.pgid) and time.monotonic() < deadline:
                    self._reap()
                    time.sleep(0.05)
        self._reap()
        # A killed process's listening sockets close a moment after it is gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            listening(port) for port in (state.apiserver_port, state.etcd_port)
        ):
            time.sleep(0.05)
        self._state_file.unlink(missing_ok=True)
        self.state = None

    def stop_stale(self) -> None:
        """Stop a cluster left running in this folder by an earlier process."""
        stale = self._load_state()
        if stale is not None:
            self.log(f"stopping a stale control plane (process group {stale.pgid})")
            self.state = stale
            self.stop()

    def running(self) -> bool:
        state = self.state or self._load_state()
        return state is not None and _pgid_alive(state.pgid)

    @classmethod
    def attach(cls, state_dir: Path, binaries: Binaries, *, log: Log = print) -> DevCluster:
        """The cluster already running in `state_dir` (started by this or another process)."""
        cluster = cls(state_dir, binaries, log=log)
        cluster.state = cluster._load_state()
        if cluster.state is None:
            raise ClusterError(f"no control plane runs in {cluster.state_dir}")
        return cluster

    # -- faults (for the fault-injection tests) ----------------------------------------

    def restart_apiserver(self, *, down_seconds: float = 0.0, timeout: float = 60.0) -> None:
        """Kill kube-apiserver (SIGKILL, a crash), wait `down_seconds`, start it again.

        It comes back with the same command line, port and etcd data, in the cluster's
        process group; this returns once it answers /readyz. Clients see their
        connections drop and their watches end, as in a real control-plane restart.
        """
        # The folder, not memory: another instance may have restarted it since.
        state = self._load_state()
        if state is None:
            raise ClusterError("the control plane is not running")
        self.state = state
        pid = state.pids["kube-apiserver"]
        args = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while listening(state.apiserver_port) and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        time.sleep(down_seconds)
        self._spawn("kube-apiserver", [arg.decode() for arg in args])
        self._wait_ok(
            f"{state.server}/readyz", "kube-apiserver", deadline=timeout, tls=self._admin_tls()
        )

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision and return that revision.

        Watches that resume from an older resourceVersion then get 410 Gone and relist.
        """
        state = self.state or self._load_state()
        if state is None:
            raise ClusterError("the control plane is not running")
        base = f"http://127.0.0.1:{state.etcd_port}/v3/kv"
        key = base64.b64encode(b"/registry").decode()
        header = self._etcd_call(f"{base}/range", {"key": key, "limit": 1})["header"]
        revision = int(header["revision"])
        self._etcd_call(f"{base}/compaction", {"revision": revision, "physical": True})
        return revision

    @staticmethod
    def _etcd_call(url: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    # -- components --------------------------------------------------------------------

    def _etcd_args(self, data_dir: Path, port: int, peer_port: int) -> list[str]:
        client, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
        return [
            str(self.binaries.etcd),
            "--name=dev",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=dev={peer}",
            "--listen-metrics-urls=",
            # The data is thrown away with the cluster: durability buys nothing here.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self, certs: pki.Pki, port: int, etcd_port: int) -> list[str]:
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.pki_dir}",
            f"--tls-cert-file={certs.apiserver.cert}",
            f"--tls-private-key-file={certs.apiserver.key}",
            f"--client-ca-file={certs.ca.cert}",
            "--authorization-mode=RBAC",
            "--enable-admission-plugins=ServiceAccount,NamespaceLifecycle,OwnerReferencesPermissionEnforcement",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={certs.service_account_pub}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # No kube-proxy and no real Service traffic: the endpoint reconciler
            # would otherwise insist on a routable advertise address.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=0",
        ]

    def _controller_manager_args(self, certs: pki.Pki) -> list[str]:
        kubeconfig = self.state_dir / "controller-manager.kubeconfig"
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.pki_dir / 'controller-manager'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={certs.service_account_key}",
            f"--root-ca-file={certs.ca.cert}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--profiling=false",
            "--v=0",
            *self.controller_manager_flags,
        ]

    def _scheduler_args(self) -> list[str]:
        kubeconfig = self.state_dir / "scheduler.kubeconfig"
        return [
            str(self.binaries.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.pki_dir / 'scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=0",
        ]

    def _kwok_args(self) -> list[str]:
        stages = self.state_dir / "kwok-stages.yaml"
        stages.write_text(
            resources.files("trigger_operator.devcluster").joinpath("kwok-stages.yaml").read_text()
        )
        return [
            str(self.binaries.kwok),
            f"--kubeconfig={self.state_dir / 'admin-files.kubeconfig'}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.0.0.1/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            "--server-address=",
        ]

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.state is not None
        self.log(f"starting {name}")
        logfile = (self.logs_dir / f"{name}.log").open("ab")
        # All components share one process group, led by the first: one killpg stops all.
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            process_group=self.state.pgid,
            cwd=self.state_dir,
        )
        logfile.close()
        if not self.state.pgid:
            self.state.pgid = process.pid
        self.state.pids[name] = process.pid
        # A restarted component replaces its predecessor: only live ones are checked.
        self._children = {**getattr(self, "_children", {}), name: process}
        self._save_state()

    def _reap(self) -> None:
        for child in getattr(self, "_children", {}).values():
            child.poll()

    def _check_alive(self) -> None:
        children: dict[str, subprocess.Popen[bytes]] = getattr(self, "_children", {})
        for name, child in children.items():
            if child.poll() is not None:
                raise ClusterError(
                    f"{name} exited with code {child.returncode}; "
                    f"see {self.logs_dir / (name + '.log')}"
                )

    # -- readiness ---------------------------------------------------------------------

    def _admin_tls(self) -> ssl.SSLContext:
        """The admin client's TLS context for this cluster's API server (made once)."""
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
            self._tls.load_cert_chain(
                str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key")
            )
        return self._tls

    def _wait_ok(
        self, url: str, name: str, *, deadline: float, tls: ssl.SSLContext | None = None
    ) -> None:
        """Poll `url` until it answers 200, while every component is still alive."""
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2, context=tls) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
                pass
            time.sleep(0.1)
        raise ClusterError(
            f"{name} was not ready after {deadline:.0f} s; see {self.logs_dir / (name + '.log')}"
        )

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.state is not None
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.state.server}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self._admin_tls()) as response:
            return json.loads(response.read() or b"null")

    def _create_nodes(self) -> None:
        for index in range(self.nodes):
            name = f"{NODE_NAME_PREFIX}{index}"
            self._request(
                "POST",
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "type": "kwok",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
                        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
                    },
                },
            )

    def _wait_ready(self, *, deadline: float) -> None:
        """Wait for a Ready node and for the default ServiceAccount (controllers are up)."""
        until = time.monotonic() + deadline
        node_ready = sa_ready = False
        while time.monotonic() < until:
            self._check_alive()
            if not node_ready:
                nodes = self._request("GET", "/api/v1/nodes")["items"]
                node_ready = any(
                    condition.get("type") == "Ready" and condition.get("status") == "True"
                    for node in nodes
                    for condition in (node.get("status") or {}).get("conditions") or []
                )
            if not sa_ready:
                try:
                    self._request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
                    sa_ready = True
                except urllib.error.HTTPError as error:
                    if error.code != 404:
                        raise
            if node_ready and sa_ready:
                return
            time.sleep(0.2)
        raise ClusterError(
            f"cluster not ready after {deadline:.0f} s (node Ready: {node_ready}, "
            f"default ServiceAccount: {sa_ready}); see {self.logs_dir}"
        )

    # -- files -------------------------------------------------------------------------

    def _write_kubeconfigs(self, certs: pki.Pki, port: int) -> None:
        server = f"https://127.0.0.1:{port}"
        ca = certs.ca.cert
        files = {
            "kubeconfig": (certs.admin, "admin", True),
            "admin-files.kubeconfig": (certs.admin, "admin", False),
            "controller-manager.kubeconfig": (
                certs.controller_manager,
                "controller-manager",
                False,
            ),
            "scheduler.kubeconfig": (certs.scheduler, "scheduler", False),
        }
        for filename, (credential, user, inline) in files.items():
            path = self.state_dir / filename
            path.write_text(
                _kubeconfig(server, ca, credential.cert, credential.key, user=user, inline=inline)
            )
            path.chmod(0o600)

    def _save_state(self) -> None:
        assert self.state is not None
        self._state_file.write_text(json.dumps(asdict(self.state), indent=2))

    def _load_state(self) -> ClusterState | None:
        try:
            raw = json.loads(self._state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        state = ClusterState(**raw)
        if not _pgid_alive(state.pgid):
            self._state_file.unlink(missing_ok=True)
            return None
        return state
