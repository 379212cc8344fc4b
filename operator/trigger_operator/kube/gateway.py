"""The only code that calls the Kubernetes API.

Callers get plain JSON-like dicts and domain errors instead of `ApiException`:
404 → `None` (or `NotFound` where absence is an error), 409 → `Conflict` /
`AlreadyExists`, 403 → `Forbidden`, 400/422 → `Invalid`, everything else →
`ApiUnavailable` (worth a retry). A Job larger than the API server stores is `Invalid`
before it is sent. The official client is synchronous; its calls run in a bounded
thread pool so that the asyncio loop (kopf's and the scheduler's) never blocks on the
network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from trigger_operator.jobs.builder import ANNOTATION_RUN_NOW
from trigger_operator.models.api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from trigger_operator.models.instants import format_instant

_PAGE = 500
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
"""Seconds to wait for a connection, and for an answer: no call hangs forever."""
# The name the operator writes under: the field manager of its writes, the component of
# its Events.
FIELD_MANAGER = "trigger-operator"

# The API server refuses a request body over 3 MiB and etcd an object over 1.5 MiB
# (its default --max-request-bytes); a Job is never sent larger than this, with room
# for the fields the server adds (managedFields, status).
MAX_JOB_BYTES = 1_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class Listing:
    """The items of a list call, and the resourceVersion the list was read at."""

    items: list[dict[str, Any]]
    resource_version: str


class KubeError(Exception):
    """A Kubernetes API call failed; `status` is the HTTP status (0 without an answer)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """A precondition failed (stale resourceVersion or uid)."""


class AlreadyExists(Conflict):
    pass


class Forbidden(KubeError):
    pass


class Invalid(KubeError):
    """The API server rejected the object; the message says which field and why."""


class ApiUnavailable(KubeError):
    """No answer, or a server-side error: worth retrying later."""


class Fenced(KubeError):
    """A write not sent: this replica may no longer write (see `KubeGateway.fence`)."""


def _message(error: ApiException) -> tuple[str, str]:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or error.reason or error), str(body.get("reason") or "")


_NOT_READY = "cannot find RESTMapping"


def _translate(error: ApiException) -> KubeError:
    message, reason = _message(error)
    status = int(error.status or 0)
    if status == 404:
        return NotFound(message, status=status, reason=reason)
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
        return kind(message, status=status, reason=reason)
    if status == 403 and _NOT_READY in message:
        # Owner-reference admission does not know the owner's kind yet (its CRD was just
        # installed and discovery lags): not a permission problem, and it passes.
        return ApiUnavailable(message, status=status, reason=reason)
    if status == 403:
        return Forbidden(message, status=status, reason=reason)
    if status in (400, 422):
        return Invalid(message, status=status, reason=reason)
    return ApiUnavailable(message, status=status, reason=reason)


def _check_job_size(body: dict[str, Any]) -> None:
    size = len(json.dumps(body, separators=(",", ":")).encode())
    if size > MAX_JOB_BYTES:
        raise Invalid(
            f"the Job would be {size} bytes, more than the {MAX_JOB_BYTES} the operator sends "
            "(the API server stores objects up to 1.5 MiB); the payload is copied into every "
            "container's environment: make it or the jobTemplate smaller",
            status=413,
            reason="RequestEntityTooLarge",
        )


def load_api_client(*, connections: int = 4) -> client.ApiClient:
    """An API client from the in-cluster service account, else from the kubeconfig.

    The kubeconfig is the one kubectl reads: `KUBECONFIG`, else `~/.kube/config`. The
    client keeps up to `connections` connections open: as many as threads use it, so
    that no call opens (and discards) a connection of its own.
    """
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


def context_namespace() -> str:
    """The namespace of the current kubeconfig context, as kubectl picks it; else default."""
    try:
        # The client's functions are untyped; name the one used here with its shape.
        list_contexts: Callable[[], tuple[Any, Any]] = config.list_kube_config_contexts
        _, active = list_contexts()
    except Exception:
        return "default"
    namespace = (active or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else "default"


class KubeGateway:
    """Typed, async access to the few API calls the operator makes."""

    def __init__(
        self, api: client.ApiClient, *, workers: int = 20, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.api = api
        self._timeout = (CONNECT_TIMEOUT, timeout)
        # Whether writes may still be sent (the leader's local deadline); None: always.
        self.fence: Callable[[], bool] | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._coordination = client.CoordinationV1Api(api)
        self._authentication = client.AuthenticationV1Api(api)
        self._authorization = client.AuthorizationV1Api(api)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(
        self, fn: Callable[..., Any], *args: Any, fenced: bool = False, **kwargs: Any
    ) -> Any:
        def run() -> Any:
            # Checked again on the worker thread, right before the request leaves: a write
            # that waited in the pool (or in a paused process) past the leader's deadline
            # is not sent.
            if fenced and self.fence is not None and not self.fence():
                raise Fenced("not sent: this replica may no longer write")
            try:
                response = fn(
                    *args, _preload_content=False, _request_timeout=self._timeout, **kwargs
                )
            except ApiException as error:
                raise _translate(error) from error
            except (HTTPError, OSError) as error:
                raise ApiUnavailable(f"API server unreachable: {error}") from error
            except (ValueError, TypeError) as error:
                # The client library refuses the request before sending it (a body it
                # cannot encode, a value of the wrong type): the object is at fault.
                raise Invalid(f"the Kubernetes client refuses the request: {error}") from error
            data = response.data
            return json.loads(data) if data else None

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, run)

    async def _list(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Listing:
        """All items of a list call, following `continue`, and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._call(fn, *args, limit=_PAGE, _continue=token, **kwargs)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                return Listing(items=items, resource_version=str(metadata.get("resourceVersion")))

    async def _maybe(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._call(fn, *args, **kwargs)
        except NotFound:
            return None

    # -- triggers ------------------------------------------------------------------------

    async def read_trigger(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(  # type: ignore[no-any-return]
            self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )

    async def patch_trigger_status(
        self, namespace: str, name: str, *, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge `status` into the trigger's status, only if it is still at `resource_version`.

        A stale writer gets `Conflict` and must re-read: the cursor never moves back.
        """
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return await self._call(  # type: ignore[no-any-return]
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            field_manager=FIELD_MANAGER,
            _content_type="application/merge-patch+json",
            fenced=True,
        )

    async def list_triggers(self, namespace: str | None) -> Listing:
        """Every trigger in `namespace` (None: every namespace), page by page."""
        if namespace is None:
            return await self._list(self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        return await self._list(
            self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
        )

    # -- jobs ----------------------------------------------------------------------------

    async def list_jobs(self, namespace: str | None, label_selector: str) -> Listing:
        """The Jobs `label_selector` selects, in `namespace` (None: every namespace)."""
        if namespace is None:
            return await self._list(
                self._batch.list_job_for_all_namespaces, label_selector=label_selector
            )
        return await self._list(
            self._batch.list_namespaced_job, namespace, label_selector=label_selector
        )

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Job; `AlreadyExists` when its name is taken, `Invalid` when too large."""
        _check_job_size(body)
        namespace = body["metadata"]["namespace"]
        return await self._call(  # type: ignore[no-any-return]
            self._batch.create_namespaced_job,
            namespace,
            body,
            field_manager=FIELD_MANAGER,
            fenced=True,
        )

    async def dry_run_job(self, body: dict[str, Any]) -> None:
        """Ask the API server whether it would accept this Job; `Invalid` says why not."""
        _check_job_size(body)
        namespace = body["metadata"]["namespace"]
        await self._call(
            self._batch.create_namespaced_job,
            namespace,
            body,
            dry_run="All",
            field_manager=FIELD_MANAGER,
        )

    async def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(  # type: ignore[no-any-return]
            self._batch.read_namespaced_job, name, namespace
        )

    async def delete_job(self, namespace: str, name: str, *, uid: str) -> bool:
        """Delete a Job and its pods; False if gone already.

        Foreground: the garbage collector deletes the pods at once, although the Job itself
        stays until the run-record finalizer is released. With Background the pods would
        wait for the Job to be gone, so a replaced run held by its finalizer would keep
        running, even to completion, while the ledger calls it cancelled.
        """
        body = {"propagationPolicy": "Foreground", "preconditions": {"uid": uid}}
        try:
            await self._call(
                self._batch.delete_namespaced_job, name, namespace, body=body, fenced=True
            )
        except (NotFound, Conflict):
            return False
        return True

    async def release_job(
        self, namespace: str, name: str, *, uid: str, finalizers: Sequence[str], finalizer: str
    ) -> bool:
        """Remove `finalizer` from a Job known to have `finalizers`; False if it is gone.

        A JSON patch that first tests the uid and the finalizer's position, so a Job that
        changed meanwhile is refused (`Invalid`) instead of losing another finalizer.
        """
        index = list(finalizers).index(finalizer)
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            await self._call(
                self._batch.patch_namespaced_job,
                name,
                namespace,
                patch,
                field_manager=FIELD_MANAGER,
                _content_type="application/json-patch+json",
                fenced=True,
            )
        except NotFound:
            return False
        return True

    # -- who is asking (the /metrics endpoint) ---------------------------------------------

    async def review_token(self, token: str, *, audiences: list[str]) -> dict[str, Any]:
        """The TokenReview's status for a bearer token: `authenticated`, `user`, `error`."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        }
        review = await self._call(self._authentication.create_token_review, body)
        return dict(review.get("status") or {})

    async def review_access(
        self, *, user: str, uid: str, groups: list[str], path: str, verb: str
    ) -> bool:
        """Whether the API server's authorizer lets `user` `verb` the non-resource URL `path`."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "uid": uid,
                "groups": groups,
                "nonResourceAttributes": {"path": path, "verb": verb},
            },
        }
        review = await self._call(self._authorization.create_subject_access_review, body)
        return bool((review.get("status") or {}).get("allowed"))

    # -- events --------------------------------------------------------------------------

    async def emit_event(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        kind: str = KIND,
        api_version: str = API_VERSION,
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> None:
        """Record a core/v1 Event about an object (best effort: failures are swallowed)."""
        stamp = format_instant(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name[:200]}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": name,
                "namespace": namespace,
                "uid": uid,
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
        }
        with contextlib.suppress(KubeError):
            await self._call(self._core.create_namespaced_event, namespace, body)

    # -- pods, replica sets, leases (leadership) --------------------------------------------

    async def served_resources(self, group: str, version: str) -> set[str]:
        """The resources the API server's discovery lists under group/version (none: empty)."""
        found = await self._maybe(self._custom.get_api_resources, group, version)
        return {str(item.get("name")) for item in (found or {}).get("resources") or []}

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(  # type: ignore[no-any-return]
            self._core.read_namespaced_pod, name, namespace
        )

    async def read_replica_set(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(  # type: ignore[no-any-return]
            self._apps.read_namespaced_replica_set, name, namespace
        )

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._maybe(  # type: ignore[no-any-return]
            self._coordination.read_namespaced_lease, name, namespace
        )

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(  # type: ignore[no-any-return]
            self._coordination.create_namespaced_lease, namespace, body
        )

    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a Lease; `body.metadata.resourceVersion` makes it conditional (409 if stale)."""
        return await self._call(  # type: ignore[no-any-return]
            self._coordination.replace_namespaced_lease, name, namespace, body
        )


def request_run_now(api: client.ApiClient, namespace: str, name: str, value: str) -> None:
    """Set the trigger's run-now annotation to `value` (a synchronous call, for the CLI)."""
    body = {"metadata": {"annotations": {ANNOTATION_RUN_NOW: value}}}
    try:
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _content_type="application/merge-patch+json",
        )
    except ApiException as error:
        raise _translate(error) from error
