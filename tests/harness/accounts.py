"""Real users for tests: ServiceAccounts, their tokens, and what they are granted.

A token comes from the TokenRequest API; a kubeconfig made from it carries nothing else
(no client certificate, which would authenticate as its owner whatever token is given),
so every request made with it is authorized as that ServiceAccount and nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.harness.cluster import KubeCluster


def create_account(cluster: KubeCluster, namespace: str, name: str) -> str:
    """A new ServiceAccount; returns its user name (system:serviceaccount:NS:NAME)."""
    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    cluster.core().create_namespaced_service_account(namespace, account)
    return f"system:serviceaccount:{namespace}:{name}"


def account_token(cluster: KubeCluster, namespace: str, account: str) -> str:
    """A fresh token of `account`, valid for an hour."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    answer = cluster.core().create_namespaced_service_account_token(account, namespace, request)
    assert answer.status is not None, "a TokenRequest answers with a token"
    return str(answer.status.token)


def account_kubeconfig(cluster: KubeCluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig whose only credential is a fresh token of `account`."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    token = account_token(cluster, namespace, account)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": server["cluster"]}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "cluster", "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def grant(cluster: KubeCluster, namespace: str, account: str, rules: list[dict[str, Any]]) -> None:
    """A Role with `rules` in `namespace`, bound to the ServiceAccount `account` there."""
    rbac = cluster.rbac()
    name = f"{account}-grant"
    role: Any = {"metadata": {"name": name}, "rules": rules}
    rbac.create_namespaced_role(namespace, role)
    binding: Any = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    rbac.create_namespaced_role_binding(namespace, binding)
