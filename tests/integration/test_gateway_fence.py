"""The write fence on the real API server: a write the fence closes on never arrives.

The gateway asks the fence twice: when a write's turn comes, and again as its body's
bytes go out. Between the two are turns of the event loop (a connection to open, the
task that writes the body); a process paused there past its Lease would otherwise send
the write when it resumes, in another leader's term. Here the fence is open at the
first question and closed at the second, as it is for a process paused between them:
the API server must never see the write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.harness.cluster import KubeCluster
from trigger_operator.kube.connection import from_kubeconfig
from trigger_operator.kube.gateway import Fenced, KubeGateway

pytestmark = pytest.mark.integration


def _closing_after(opened: int) -> tuple[Callable[[], bool], list[bool]]:
    """A fence open for its first `opened` questions and closed after; its answers."""
    answers: list[bool] = []

    def fence() -> bool:
        answers.append(len(answers) < opened)
        return answers[-1]

    return fence, answers


def _job(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "run", "image": "busybox"}],
                }
            }
        },
    }


@pytest.fixture
async def gateway(cluster: KubeCluster) -> AsyncIterator[KubeGateway]:
    gateway = KubeGateway(from_kubeconfig({"KUBECONFIG": str(cluster.kubeconfig)}))
    try:
        yield gateway
    finally:
        await gateway.aclose()


async def test_a_create_the_fence_closes_on_as_it_goes_out_is_never_made(
    gateway: KubeGateway, namespace: str
) -> None:
    gateway.fence, answers = _closing_after(1)

    with pytest.raises(Fenced):
        await gateway.create_job(_job(namespace, "fenced"))

    assert answers == [True, False]  # asked when its turn came, and as it went out
    gateway.fence = None
    assert await gateway.read_job(namespace, "fenced") is None
    # The same request with the fence open is made: only the fence kept it back.
    created = await gateway.create_job(_job(namespace, "fenced"))
    assert created["metadata"]["uid"]


async def test_a_delete_the_fence_closes_on_as_it_goes_out_leaves_the_job(
    gateway: KubeGateway, namespace: str
) -> None:
    created = await gateway.create_job(_job(namespace, "kept"))
    gateway.fence, answers = _closing_after(1)

    with pytest.raises(Fenced):
        await gateway.delete_job(namespace, "kept", uid=created["metadata"]["uid"])

    assert answers == [True, False]
    found = await gateway.read_job(namespace, "kept")
    assert found is not None
    assert "deletionTimestamp" not in found["metadata"]


async def test_a_write_on_a_reused_connection_is_fenced_as_it_goes_out_too(
    gateway: KubeGateway, namespace: str
) -> None:
    # The first call opens the connection; the second finds it open and reuses it.
    assert await gateway.read_job(namespace, "absent") is None
    gateway.fence, answers = _closing_after(1)

    with pytest.raises(Fenced):
        await gateway.create_job(_job(namespace, "reused"))

    assert answers == [True, False]
    gateway.fence = None
    assert await gateway.read_job(namespace, "reused") is None
