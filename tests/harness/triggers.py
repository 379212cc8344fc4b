"""Helpers to write, read and watch ScheduledTriggers and their Jobs in tests."""

from __future__ import annotations

import copy
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster
from trigger_operator.models.api import GROUP, PLURAL, VERSION

POD_TEMPLATE: dict[str, Any] = {
    "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "run", "image": "busybox", "command": ["true"]}],
    }
}


def manifest(
    name: str,
    *,
    schedule: str | None = None,
    run_at: str | None = None,
    pod_annotations: dict[str, str] | None = None,
    job_spec: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A ScheduledTrigger manifest; extra keyword arguments are spec fields (camelCase)."""
    template = copy.deepcopy(POD_TEMPLATE)
    if pod_annotations:
        template["metadata"] = {"annotations": pod_annotations}
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScheduledTrigger",
        "metadata": {"name": name},
        "spec": {
            **({"schedule": schedule} if schedule is not None else {}),
            **({"runAt": run_at} if run_at is not None else {}),
            **spec,
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": template, **(job_spec or {})}},
        },
    }
    return body


class Triggers:
    """ScheduledTriggers and Jobs of one namespace."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.custom = cluster.custom()
        self.batch = cluster.batch()

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return cast("dict[str, Any]", created)

    def get(self, name: str) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return cast("dict[str, Any]", found)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def patch(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )
        return cast("dict[str, Any]", patched)

    def delete(self, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def jobs(self, name: str | None = None) -> list[Any]:
        selector = f"triggers.dev/trigger={name}" if name else "triggers.dev/trigger"
        items = self.batch.list_namespaced_job(self.namespace, label_selector=selector).items
        return sorted(
            items, key=lambda job: job.metadata.annotations.get("triggers.dev/scheduled-for", "")
        )

    def scheduled_times(self, name: str) -> list[str]:
        return [job.metadata.annotations["triggers.dev/scheduled-for"] for job in self.jobs(name)]

    def ready(self, name: str) -> dict[str, Any] | None:
        for condition in self.status(name).get("conditions") or []:
            if condition.get("type") == "Ready":
                return dict(condition)
        return None

    def events(self, name: str) -> list[Any]:
        return [
            event
            for event in self.cluster.core().list_namespaced_event(self.namespace).items
            if event.involved_object.name == name
            and event.involved_object.kind == "ScheduledTrigger"
        ]
