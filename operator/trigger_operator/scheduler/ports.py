"""The Kubernetes calls the scheduler makes, as a protocol.

`kube.gateway.KubeGateway` is the implementation; the unit tests use an in-memory one
with the API server's semantics (resourceVersion preconditions, AlreadyExists, uid
preconditions on delete). Errors are the gateway's domain errors (`kube.gateway`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from trigger_operator.kube.gateway import Listing


class SchedulerGateway(Protocol):
    """Triggers, their Jobs, and Events about them."""

    async def read_trigger(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_trigger_status(
        self, namespace: str, name: str, *, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def list_triggers(
        self, namespace: str | None, *, each: Callable[[dict[str, Any]], None] | None = None
    ) -> Listing: ...

    async def list_jobs(
        self,
        namespace: str | None,
        label_selector: str,
        *,
        each: Callable[[dict[str, Any]], None] | None = None,
    ) -> Listing: ...

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def dry_run_job(self, body: dict[str, Any]) -> None: ...

    async def read_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def delete_job(self, namespace: str, name: str, *, uid: str) -> bool: ...

    async def release_job(
        self,
        namespace: str,
        name: str,
        *,
        uid: str,
        finalizers: Sequence[str],
        finalizer: str,
        resource_version: str | None = None,
    ) -> bool: ...

    async def emit_event(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> None: ...
