"""The dev control plane's own lifecycle: stopping it leaves no process and no port, and
a cluster left behind by a killed process is cleaned up by the next start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trigger_operator.devcluster import binaries
from trigger_operator.devcluster.cluster import ClusterState, DevCluster, listening

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; /proc says which.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_stopping_the_cluster_leaves_no_process_and_no_listening_port(tmp_path: Path) -> None:
    cluster = DevCluster(tmp_path / "c", binaries.ensure(), log=lambda _: None)
    cluster.start()
    state = cluster.state
    assert isinstance(state, ClusterState)
    assert set(state.pids) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    assert listening(state.apiserver_port)
    assert listening(state.etcd_port)

    cluster.stop()

    assert not any(_alive(pid) for pid in state.pids.values())
    assert not listening(state.apiserver_port)
    assert not listening(state.etcd_port)
    assert not cluster.running()


def test_a_cluster_left_running_is_stopped_by_the_next_start(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    first = DevCluster(folder, binaries.ensure(), log=lambda _: None)
    first.start()
    stale = first.state
    assert stale is not None

    # A new process knows nothing but the folder, like `make cluster-up` after a crash.
    second = DevCluster(folder, binaries.ensure(), log=lambda _: None)
    second.start()
    try:
        assert not any(_alive(pid) for pid in stale.pids.values())
        assert second.state is not None
        assert second.state.pgid != stale.pgid
    finally:
        second.stop()
