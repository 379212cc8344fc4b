"""Which revision of the operator this process is.

In a Deployment: the operator's own Pod (POD_NAME/POD_NAMESPACE from the downward API)
→ its owning ReplicaSet → the `deployment.kubernetes.io/revision` annotation, which the
Deployment controller raises on every rollout (including `kubectl rollout restart`).
`TRIGGER_OPERATOR_REVISION` overrides it; outside a pod, without it, the revision is 0.
"""

from __future__ import annotations

import logging

from trigger_operator.kube.gateway import Forbidden, KubeGateway
from trigger_operator.models.settings import Settings

log = logging.getLogger(__name__)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class RevisionUnknown(RuntimeError):
    """The operator may not read its own Pod or ReplicaSet; the message says what to grant."""


async def discover_revision(gateway: KubeGateway, settings: Settings) -> tuple[int, str]:
    """The revision and where it came from (`setting`, `replicaset/NAME`, or `default`)."""
    if settings.revision is not None:
        return settings.revision, "setting"
    if not settings.pod_name:
        return 0, "default"
    namespace = settings.operator_namespace
    try:
        return await _from_replica_set(gateway, namespace, settings.pod_name)
    except Forbidden as error:
        raise RevisionUnknown(
            f"cannot read its own pod {namespace}/{settings.pod_name} or its ReplicaSet "
            f"({error}); grant get on pods and replicasets in {namespace}, "
            "or set TRIGGER_OPERATOR_REVISION"
        ) from error


async def _from_replica_set(gateway: KubeGateway, namespace: str, pod_name: str) -> tuple[int, str]:
    pod = await gateway.read_pod(namespace, pod_name)
    if pod is None:
        log.warning(
            "own pod not found; revision 0",
            extra={"pod": pod_name, "namespace": namespace},
        )
        return 0, "default"
    owner = next(
        (
            ref
            for ref in pod["metadata"].get("ownerReferences") or []
            if ref.get("kind") == "ReplicaSet"
        ),
        None,
    )
    if owner is None:
        return 0, "default"
    replica_set = await gateway.read_replica_set(namespace, owner["name"])
    annotations = ((replica_set or {}).get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations[REVISION_ANNOTATION]), f"replicaset/{owner['name']}"
    except (KeyError, ValueError):
        log.warning("ReplicaSet has no revision; revision 0", extra={"replicaset": owner["name"]})
        return 0, "default"
