"""The command line's calls to the Kubernetes API: synchronous, one request each.

The operator's own calls go through the asynchronous `gateway.KubeGateway`; a command
makes a handful of calls and exits, so these call the client directly and answer plain
dicts and the gateway's domain errors (404 → None where absence is an answer).

People ask the operator for work by setting `triggers.dev/` annotations on a trigger
(run-now, its payload, resume, backfill): `annotate_trigger` sets (or, with None,
removes) several of them in one merge patch, so the operator never sees half a request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from trigger_operator.kube.gateway import (
    ApiUnavailable,
    KubeError,
    NotFound,
    error_for,
    status_message,
)
from trigger_operator.models.api import CALENDAR_PLURAL, GROUP, PLURAL, VERSION


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


def _translate(error: ApiException) -> KubeError:
    """The domain error of the official client's exception."""
    message, reason = status_message(error.body, str(error.reason or error))
    return error_for(int(error.status or 0), message, reason)


def _data(response: Any) -> Any:
    data = response.data
    return json.loads(data) if data else None


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return _data(fn(*args, _preload_content=False, **kwargs))
    except ApiException as error:
        raise _translate(error) from error
    except (HTTPError, OSError) as error:
        raise ApiUnavailable(f"API server unreachable: {error}") from error


def _maybe(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return _call(fn, *args, **kwargs)
    except NotFound:
        return None


def list_triggers(api: client.ApiClient, namespace: str | None) -> list[dict[str, Any]]:
    """The ScheduledTriggers of `namespace` (None: every namespace), in name order."""
    custom = client.CustomObjectsApi(api)
    if namespace is None:
        found = _call(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
    else:
        found = _call(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)
    items: list[dict[str, Any]] = list(found.get("items") or [])
    return sorted(items, key=lambda t: (t["metadata"]["namespace"], t["metadata"]["name"]))


def read_trigger(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """One trigger; `NotFound` with a message naming it when there is none."""
    found = _maybe(
        client.CustomObjectsApi(api).get_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
    )
    if found is None:
        raise NotFound(f'scheduledtrigger "{name}" not found in namespace "{namespace}"')
    return dict(found)


def annotate_trigger(
    api: client.ApiClient, namespace: str, name: str, annotations: Mapping[str, str | None]
) -> dict[str, Any]:
    """Set (None: remove) `annotations` on the trigger in one merge patch."""
    try:
        patched = _call(
            client.CustomObjectsApi(api).patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"annotations": dict(annotations)}},
            _content_type="application/merge-patch+json",
        )
    except NotFound as error:
        raise NotFound(
            f'scheduledtrigger "{name}" not found in namespace "{namespace}"', status=404
        ) from error
    return dict(patched)


def read_job(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """One Job, or None."""
    found = _maybe(client.BatchV1Api(api).read_namespaced_job, name, namespace)
    return None if found is None else dict(found)


def list_jobs(api: client.ApiClient, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    """The Jobs of `namespace` that `label_selector` selects."""
    found = _call(
        client.BatchV1Api(api).list_namespaced_job, namespace, label_selector=label_selector
    )
    return list(found.get("items") or [])


def list_calendars(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The ScheduleCalendars of `namespace`."""
    found = _call(
        client.CustomObjectsApi(api).list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        CALENDAR_PLURAL,
    )
    return list(found.get("items") or [])


def trigger_events(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events about trigger `name`, oldest first."""
    selector = f"involvedObject.name={name},involvedObject.kind=ScheduledTrigger"
    found = _call(client.CoreV1Api(api).list_namespaced_event, namespace, field_selector=selector)
    items: list[dict[str, Any]] = list(found.get("items") or [])

    def moment(event: dict[str, Any]) -> str:
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event["metadata"].get("creationTimestamp")
            or ""
        )

    return sorted(items, key=moment)


__all__ = [
    "KubeError",
    "annotate_trigger",
    "list_jobs",
    "list_triggers",
    "read_job",
    "read_trigger",
    "trigger_events",
]
