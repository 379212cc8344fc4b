"""How API errors become domain errors: which are final, which are worth a retry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from trigger_operator.kube.connection import Connection
from trigger_operator.kube.gateway import (
    AlreadyExists,
    ApiUnavailable,
    Conflict,
    Fenced,
    Forbidden,
    Invalid,
    KubeError,
    KubeGateway,
    NotFound,
)
from trigger_operator.kube.requests import _translate


def _error(status: int, message: str, reason: str = "") -> ApiException:
    error = ApiException(status=status, reason="HTTP")
    error.body = json.dumps({"kind": "Status", "message": message, "reason": reason})
    return error


@pytest.mark.parametrize(
    ("status", "message", "reason", "expected"),
    [
        (404, 'jobs.batch "x" not found', "NotFound", NotFound),
        (409, 'jobs.batch "x" already exists', "AlreadyExists", AlreadyExists),
        (409, "the object has been modified", "Conflict", Conflict),
        (403, 'cannot create resource "jobs"', "Forbidden", Forbidden),
        (422, "spec.template.spec.containers: Required value", "Invalid", Invalid),
        (500, "etcdserver: request timed out", "InternalError", ApiUnavailable),
    ],
)
def test_statuses_map_to_domain_errors(
    status: int, message: str, reason: str, expected: type[KubeError]
) -> None:
    translated = _translate(_error(status, message, reason))
    assert type(translated) is expected
    assert str(translated) == message


def test_an_owner_kind_unknown_to_admission_is_not_ready_rather_than_forbidden() -> None:
    message = (
        'jobs.batch "tick-1" is forbidden: cannot set blockOwnerDeletion in this case because '
        "cannot find RESTMapping for APIVersion triggers.dev/v1alpha1 Kind ScheduledTrigger"
    )
    assert type(_translate(_error(403, message, "Forbidden"))) is ApiUnavailable


async def test_a_job_larger_than_the_api_server_stores_is_invalid_before_it_is_sent() -> None:
    # No API server behind this client: the guard answers before any request.
    gateway = KubeGateway(Connection(host="http://127.0.0.1:9", source="nowhere"))
    env = [{"name": "TRIGGER_PAYLOAD", "value": "x" * 30_000}]
    containers = [{"name": f"c{n}", "image": "busybox", "env": env} for n in range(40)]
    body = {
        "metadata": {"name": "big", "namespace": "team-a"},
        "spec": {"template": {"spec": {"containers": containers}}},
    }
    try:
        for send in (gateway.create_job, gateway.dry_run_job):
            with pytest.raises(Invalid, match="more than the 1000000 the operator sends"):
                await send(body)
    finally:
        await gateway.aclose()


async def test_a_write_is_not_sent_once_the_fence_closes_but_reads_still_are() -> None:
    # Port 9 answers nothing: a call that is sent fails as unreachable, one that is
    # fenced fails before it leaves.
    gateway = KubeGateway(Connection(host="http://127.0.0.1:9", source="nowhere"))
    gateway.fence = lambda: False
    body = {
        "metadata": {"name": "run", "namespace": "team-a"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }
    try:
        with pytest.raises(Fenced):
            await gateway.create_job(body)
        with pytest.raises(Fenced):
            await gateway.delete_job("team-a", "run", uid="u")
        with pytest.raises(Fenced):
            await gateway.patch_trigger_status("team-a", "t", resource_version="1", status={})
        with pytest.raises(ApiUnavailable):
            await gateway.read_job("team-a", "run")
        gateway.fence = lambda: True
        with pytest.raises(ApiUnavailable):
            await gateway.create_job(body)
    finally:
        await gateway.aclose()


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object()])
async def test_a_body_that_cannot_be_sent_as_json_is_invalid_before_it_is_sent(value: Any) -> None:
    gateway = KubeGateway(Connection(host="http://127.0.0.1:9", source="nowhere"))
    body = {"metadata": {"name": "run", "namespace": "team-a"}, "spec": {"x": value}}
    try:
        with pytest.raises(Invalid, match="the request body cannot be sent"):
            await gateway.create_job(body)
    finally:
        await gateway.aclose()
