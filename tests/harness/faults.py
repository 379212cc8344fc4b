"""Operator replicas sharing one ledger, and the faults the fault-injection suite injects.

`Replicas` runs N operator processes for one namespace (their Lease lives there), each
with `TRIGGER_OPERATOR_REVISION`. A restart after a crash keeps the replica's identity and
revision, as a container restart in the same pod does; a rollout replaces a replica with
a new identity and a revision above every other, as a new ReplicaSet's pod does.

`FaultInjector` draws faults from a seeded `random.Random` and counts them by kind. Every
fault returns with the system whole again (killed replicas restarted, stopped ones
continued, PostgreSQL and the API server up), so faults never pile up unboundedly.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.fixtures.postgres import PostgresServer
from tests.harness.cluster import KubeCluster
from tests.harness.operator import OperatorProcess
from trigger_operator.devcluster.cluster import DevCluster

LEASE = "trigger-operator-leader"
# kube-apiserver needs etcd to answer before /readyz does; on a loaded machine that can
# take more than a minute.
RESTART_TIMEOUT = 180.0


@dataclass
class Replica:
    slot: str
    revision: int
    process: OperatorProcess
    generation: int = 0


@dataclass
class Replicas:
    """Operator processes of one namespace sharing one ledger database."""

    cluster: KubeCluster
    namespace: str
    workdir: Path
    env: Mapping[str, str]
    count: int = 3
    members: dict[str, Replica] = field(default_factory=dict)
    retired: list[OperatorProcess] = field(default_factory=list)

    def _process(self, identity: str, revision: int) -> OperatorProcess:
        return OperatorProcess(
            kubeconfig=self.cluster.kubeconfig,
            namespace=self.namespace,
            workdir=self.workdir,
            name=identity,
            env={**self.env, "TRIGGER_OPERATOR_REVISION": str(revision)},
        )

    def start_all(self) -> None:
        for index in range(self.count):
            slot = chr(ord("a") + index)
            replica = Replica(slot, 1, self._process(f"op-{slot}-r1", 1))
            self.members[slot] = replica
            replica.process.start()

    def processes(self) -> list[OperatorProcess]:
        return [*self.retired, *(r.process for r in self.members.values())]

    def top_revision(self) -> int:
        return max(r.revision for r in self.members.values())

    def holder(self) -> str | None:
        try:
            lease: Any = self.cluster.coordination().read_namespaced_lease(
                LEASE, self.namespace, _request_timeout=10
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        holder: str | None = lease.spec.holder_identity
        return holder

    def by_identity(self, identity: str | None) -> Replica | None:
        for replica in self.members.values():
            if replica.process.name == identity:
                return replica
        return None

    def roll(self, replica: Replica) -> Replica:
        """Stop `replica` gracefully and replace it by a pod of a new, highest revision."""
        replica.process.stop(timeout=30)
        self.retired.append(replica.process)
        revision = self.top_revision() + 1
        new = Replica(
            replica.slot, revision, self._process(f"op-{replica.slot}-r{revision}", revision)
        )
        self.members[replica.slot] = new
        new.process.start()
        return new

    def heal(self) -> None:
        """Every replica running and not stopped."""
        for replica in self.members.values():
            if replica.process.running():
                replica.process.resume()
            else:
                replica.process.start()

    def stop_all(self) -> None:
        for process in self.processes():
            if process.running():
                process.resume()
                process.stop(timeout=15)


@dataclass
class FaultInjector:
    """Seeded faults on replicas, PostgreSQL and (dev backend) the API server and etcd."""

    replicas: Replicas
    postgres: PostgresServer
    control_plane: DevCluster | None
    rng: random.Random
    lease_seconds: float
    log: Callable[[str], None] = print
    counts: Counter[str] = field(default_factory=Counter)

    KINDS = (
        "kill-leader",
        "kill-standby",
        "stop-leader-past-lease",
        "rollout",
        "sigterm-leader",
        "postgres-restart",
        "apiserver-restart",
        "etcd-compaction-relist",
    )

    def kinds(self) -> list[str]:
        if self.control_plane is None:
            return [
                k for k in self.KINDS if k not in ("apiserver-restart", "etcd-compaction-relist")
            ]
        return list(self.KINDS)

    def _leader(self) -> Replica:
        leader = self.replicas.by_identity(self.replicas.holder())
        if leader is None or not leader.process.running():
            leader = self.rng.choice(list(self.replicas.members.values()))
        return leader

    def _standby(self) -> Replica:
        holder = self.replicas.holder()
        others = [r for r in self.replicas.members.values() if r.process.name != holder]
        return self.rng.choice(others or list(self.replicas.members.values()))

    def inject(self, kind: str) -> None:
        started = time.monotonic()
        detail = getattr(self, "_" + kind.replace("-", "_"))()
        self.counts[kind] += 1
        self.log(
            f"fault {sum(self.counts.values())}: {kind} {detail} "
            f"({time.monotonic() - started:.1f} s)"
        )

    def _kill(self, replica: Replica) -> str:
        replica.process.kill()
        time.sleep(self.rng.uniform(0.2, 2.0))
        replica.process.start()
        return replica.process.name

    def _kill_leader(self) -> str:
        return self._kill(self._leader())

    def _kill_standby(self) -> str:
        return self._kill(self._standby())

    def _stop_leader_past_lease(self) -> str:
        leader = self._leader()
        paused = self.lease_seconds + self.rng.uniform(1.0, 3.0)
        leader.process.pause()
        try:
            time.sleep(paused)
        finally:
            leader.process.resume()
        return f"{leader.process.name} for {paused:.1f} s"

    def _rollout(self) -> str:
        old = min(self.replicas.members.values(), key=lambda r: r.revision)
        new = self.replicas.roll(old)
        return f"{old.process.name} -> {new.process.name}"

    def _sigterm_leader(self) -> str:
        leader = self._leader()
        leader.process.stop(timeout=30)
        time.sleep(self.rng.uniform(0.2, 2.0))
        leader.process.start()
        return leader.process.name

    def _postgres_restart(self) -> str:
        down = self.rng.uniform(1.0, 5.0)
        self.postgres.stop()
        time.sleep(down)
        self.postgres.start()
        return f"down {down:.1f} s"

    def _apiserver_restart(self) -> str:
        assert self.control_plane is not None
        down = self.rng.uniform(1.0, 5.0)
        self.control_plane.restart_apiserver(down_seconds=down, timeout=RESTART_TIMEOUT)
        return f"down {down:.1f} s"

    def _etcd_compaction_relist(self) -> str:
        assert self.control_plane is not None
        revision = self.control_plane.compact_etcd()
        # Established watches are served from the API server's cache and survive a
        # compaction; a restart makes every watch resume from a compacted revision.
        self.control_plane.restart_apiserver(timeout=RESTART_TIMEOUT)
        return f"at revision {revision}"
