"""The operator reads the service account or the kubeconfig as kubectl (and the official
client) would, without importing that client; a credential plugin goes to the client."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from trigger_operator.kube.connection import (
    ConfigError,
    Connection,
    from_kubeconfig,
    in_cluster,
    load_credentials,
)

CA = "-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _account(tmp_path: Path, token: str = "first") -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(token + "\n")
    (account / "ca.crt").write_text(CA)
    return account


def _kubeconfig(path: Path, *, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {"name": "c", "cluster": cluster or {"server": "https://10.1.2.3:6443"}}
                ],
                "users": [{"name": "u", "user": user}],
            }
        )
    )
    return path


# -- in a pod ------------------------------------------------------------------------------


def test_in_a_pod_the_service_account_is_used_and_its_token_read_again_each_minute(
    tmp_path: Path,
) -> None:
    account = _account(tmp_path)
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    found = in_cluster(environ, account)

    assert found is not None
    assert found.host == "https://10.96.0.1:443"
    assert found.ca_file == str(account / "ca.crt")
    assert found.authorization() == {"Authorization": "Bearer first"}
    clock = Clock()
    rotating = Connection(
        host=found.host, source="t", token_file=str(account / "token"), clock=clock
    )
    assert rotating.token() == "first"
    (account / "token").write_text("second")  # the kubelet rotated it
    clock.now = 59.0
    assert rotating.token() == "first"
    clock.now = 60.0
    assert rotating.token() == "second"


def test_outside_a_pod_or_without_the_mounted_files_the_service_account_is_not_used(
    tmp_path: Path,
) -> None:
    account = _account(tmp_path)
    assert in_cluster({}, account) is None
    assert in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, account) is None
    (account / "token").unlink()
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(environ, account) is None


def test_an_ipv6_service_address_is_bracketed(tmp_path: Path) -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    found = in_cluster(environ, _account(tmp_path))
    assert found is not None and found.host == "https://[fd00::1]:443"


# -- the kubeconfig ------------------------------------------------------------------------


def test_inline_ca_and_client_certificate_are_read_and_the_key_kept_private(
    tmp_path: Path,
) -> None:
    path = _kubeconfig(
        tmp_path / "config",
        cluster={
            "server": "https://10.1.2.3:6443",
            "certificate-authority-data": base64.b64encode(CA.encode()).decode(),
        },
        user={
            "client-certificate-data": base64.b64encode(b"CERT").decode(),
            "client-key-data": base64.b64encode(b"KEY").decode(),
        },
    )

    found = from_kubeconfig({"KUBECONFIG": str(path)})

    assert isinstance(found, Connection)
    assert (found.host, found.ca_data, found.ca_file) == ("https://10.1.2.3:6443", CA, None)
    assert found.cert_file and Path(found.cert_file).read_bytes() == b"CERT"
    assert found.key_file and Path(found.key_file).read_bytes() == b"KEY"
    assert os.stat(found.key_file).st_mode & 0o077 == 0
    assert found.authorization() == {}
    assert found.login_fields()["ca_data"] == CA.encode()


def test_relative_paths_are_relative_to_the_kubeconfig_and_a_token_file_is_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "token").write_text("from-file")
    path = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://h:6443", "certificate-authority": "certs/ca.crt"},
        user={"tokenFile": "certs/token", "client-certificate": "certs/c.crt"},
    )

    found = from_kubeconfig({"KUBECONFIG": str(path)})

    assert isinstance(found, Connection)
    assert found.ca_file == str(tmp_path / "certs" / "ca.crt")
    assert found.cert_file == str(tmp_path / "certs" / "c.crt")
    assert found.authorization() == {"Authorization": "Bearer from-file"}


def test_a_list_of_kubeconfigs_is_merged_first_name_wins(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.write_text(
        yaml.safe_dump(
            {
                "current-context": "dev",
                "users": [{"name": "u", "user": {"token": "first-token"}}],
            }
        )
    )
    second = _kubeconfig(tmp_path / "second", user={"token": "second-token"})

    found = from_kubeconfig({"KUBECONFIG": f"{first}{os.pathsep}{second}"})

    assert found.authorization() == {"Authorization": "Bearer first-token"}
    assert found.host == "https://10.1.2.3:6443"


def test_the_same_host_ca_and_certificate_as_the_official_client(tmp_path: Path) -> None:
    path = _kubeconfig(
        tmp_path / "config",
        cluster={
            "server": "https://10.1.2.3:6443",
            "certificate-authority": str(tmp_path / "ca.crt"),
        },
        user={
            "client-certificate": str(tmp_path / "c.crt"),
            "client-key": str(tmp_path / "c.key"),
        },
    )
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("x")
    official = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=official)  # type: ignore[no-untyped-call]

    ours = from_kubeconfig({"KUBECONFIG": str(path)})

    assert isinstance(ours, Connection)
    assert ours.host == official.host
    assert (ours.ca_file, ours.cert_file, ours.key_file) == (
        official.ssl_ca_cert,
        official.cert_file,
        official.key_file,
    )


def test_basic_auth_and_insecure_skip_tls_verify(tmp_path: Path) -> None:
    path = _kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://h:6443", "insecure-skip-tls-verify": True},
        user={"username": "ann", "password": "secret"},
    )
    found = from_kubeconfig({"KUBECONFIG": str(path)})
    assert found.ssl_context() is False
    assert found.authorization() == {
        "Authorization": "Basic " + base64.b64encode(b"ann:secret").decode()
    }


def test_a_credential_plugin_is_left_to_the_official_client(tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-plugin"},
    }
    plugin = tmp_path / "plugin"
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    path = _kubeconfig(
        tmp_path / "config",
        user={
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(plugin),
                "interactiveMode": "Never",
            }
        },
    )

    found = from_kubeconfig({"KUBECONFIG": str(path)})

    assert found.official
    assert found.host == "https://10.1.2.3:6443"
    assert found.authorization() == {"Authorization": "Bearer from-plugin"}
    assert found.login_fields() is None  # kopf asks the official client too


def test_no_configuration_at_all_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"not in a pod .* no kubeconfig at .*KUBECONFIG is not set"
    ):
        load_credentials({"HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="no kubeconfig at KUBECONFIG=/nowhere"):
        load_credentials({"KUBECONFIG": "/nowhere"})


def test_a_context_naming_what_is_not_there_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"current-context": "gone", "contexts": []}))
    with pytest.raises(ConfigError, match="has no context 'gone'"):
        from_kubeconfig({"KUBECONFIG": str(path)})
    path.write_text(yaml.safe_dump({"contexts": []}))
    with pytest.raises(ConfigError, match="has no current-context"):
        from_kubeconfig({"KUBECONFIG": str(path)})


# -- the operator's process ----------------------------------------------------------------


def test_the_operators_modules_import_and_build_without_the_official_client() -> None:
    # What `trigger-operator run` does before importing the operator: the official
    # client and kopf's other optional clients are left out, and nothing misses them.
    script = textwrap.dedent(
        """
        import sys
        from trigger_operator.kube.connection import leave_out_unused_clients
        left = leave_out_unused_clients()
        import trigger_operator.handlers.app
        import kopf
        real = [n for n in sys.modules if n.split(".")[0] in ("kubernetes", "pykube")
                and sys.modules[n] is not None]
        print(sorted(left), real)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "['kubernetes', 'kubernetes_asyncio', 'pykube'] []"
