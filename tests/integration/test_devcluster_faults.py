"""The dev control plane's faults for the fault-injection suite: an API server restart
keeps every object and answers again, and an etcd compaction makes a watch that resumes
from an older resourceVersion fail with 410 Gone (the relist the suite wants to force)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from trigger_operator.devcluster import binaries
from trigger_operator.devcluster.cluster import DevCluster, listening

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    cluster = DevCluster(tmp_path_factory.mktemp("faults"), binaries.ensure(), log=lambda _: None)
    cluster.start()
    yield cluster
    cluster.stop()


def _core(cluster: DevCluster) -> Any:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api)


def test_a_restarted_api_server_keeps_its_objects_and_a_new_process(
    own_cluster: DevCluster,
) -> None:
    core = _core(own_cluster)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="kept")))
    assert own_cluster.state is not None
    before = own_cluster.state.pids["kube-apiserver"]

    # Attached from the folder alone, as the fault-injection suite does.
    attached = DevCluster.attach(own_cluster.state_dir, own_cluster.binaries, log=lambda _: None)
    attached.restart_apiserver(down_seconds=1.0)

    assert attached.state is not None
    after = attached.state.pids["kube-apiserver"]
    assert after != before
    assert Path(f"/proc/{after}/cmdline").exists()
    assert listening(attached.state.apiserver_port)
    assert core.read_namespace("kept").metadata.name == "kept"
    # The cluster's folder names the new process, so a later stop finds it.
    again = DevCluster.attach(own_cluster.state_dir, own_cluster.binaries)
    assert again.state is not None
    assert again.state.pids["kube-apiserver"] == after


def test_a_watch_from_before_a_compaction_is_told_410_gone(own_cluster: DevCluster) -> None:
    core = _core(own_cluster)
    old = core.list_namespaced_config_map("default").metadata.resource_version
    for index in range(3):
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{index}"))
        )

    revision = own_cluster.compact_etcd()
    assert revision > int(old)
    # The API server's watch cache may still serve an old resourceVersion for a while;
    # a restart drops the cache, so only etcd can answer it: compacted, 410.
    own_cluster.restart_apiserver()

    with pytest.raises(ApiException) as caught:
        stream: Any = watch.Watch().stream  # type: ignore[no-untyped-call]
        for _ in stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=old,
            timeout_seconds=5,
        ):
            pass
    assert caught.value.status == 410


def test_attach_refuses_a_folder_without_a_running_cluster(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no control plane runs"):
        DevCluster.attach(tmp_path, binaries.default())
