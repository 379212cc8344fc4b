"""Where the API server is and how the operator proves who it is, read as kubectl reads it.

In a pod: the service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, the token and CA the
kubelet mounts; the token is read again every minute, as the kubelet rotates it).
Elsewhere: the kubeconfig (`KUBECONFIG`, a list of files, else `~/.kube/config`), its
current context, with a CA file or data (or `insecure-skip-tls-verify`), a client
certificate and key, a token or token file, or a user name and password.

The operator's process reads these itself rather than through the official client: that
client's import is a fifth of the process's memory and a tenth of a second of every start
(docs/benchmarks.md), for a few files. A kubeconfig user that runs a credential plugin
(`exec`) or an `auth-provider` is handed to the official client, which knows them all.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0

#: Client libraries kopf imports when they are installed, only to recognise their object
#: classes; the operator hands kopf none of them.
KOPF_OPTIONAL_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


class ConfigError(Exception):
    """No usable cluster configuration: the message says what was looked for."""


class Credentials(Protocol):
    """The API server's address, the TLS to reach it, the Authorization to send."""

    @property
    def host(self) -> str: ...

    @property
    def official(self) -> bool:
        """Whether these come from the official client (a credential plugin)."""
        ...

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS as configured (False: plain HTTP, or no certificate check)."""
        ...

    def authorization(self) -> dict[str, str]:
        """The Authorization header to send now (empty: a client certificate does)."""
        ...

    def login_fields(self) -> dict[str, Any] | None:
        """The fields of kopf's `ConnectionInfo` (None: kopf asks the official client)."""
        ...


class Connection:
    """Credentials read from the service account or a kubeconfig (see the module)."""

    official = False

    def __init__(
        self,
        *,
        host: str,
        source: str,
        ca_file: str | None = None,
        ca_data: str | None = None,
        insecure: bool = False,
        cert_file: str | None = None,
        key_file: str | None = None,
        token: str | None = None,
        token_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host.rstrip("/")
        self.source = source
        self.ca_file = ca_file
        self.ca_data = ca_data
        self.insecure = insecure
        self.cert_file = cert_file
        self.key_file = key_file
        self.token_file = token_file
        self.username = username
        self.password = password
        self._clock = clock
        self._token = token
        self._token_read_at: float | None = None

    def token(self) -> str | None:
        """The bearer token; one from a file is read again once a minute."""
        if self.token_file is None:
            return self._token
        now = self._clock()
        if self._token_read_at is None or now - self._token_read_at >= TOKEN_REREAD_SECONDS:
            try:
                self._token = Path(self.token_file).read_text().strip() or self._token
            except OSError:
                if self._token is None:
                    raise
            self._token_read_at = now
        return self._token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.host.startswith("https") or self.insecure:
            return False
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def authorization(self) -> dict[str, str]:
        token = self.token()
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username is not None and self.password is not None:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}

    def login_fields(self) -> dict[str, Any]:
        return {
            "server": self.host,
            "ca_path": self.ca_file,
            "ca_data": self.ca_data.encode() if self.ca_data else None,
            "insecure": self.insecure,
            "certificate_path": self.cert_file,
            "private_key_path": self.key_file,
            "scheme": "Bearer" if self.token() else None,
            "token": self.token(),
            "username": self.username,
            "password": self.password,
        }


def load_credentials(environ: Mapping[str, str] | None = None) -> Credentials:
    """The service account when in a pod, else the kubeconfig's current context."""
    environ = os.environ if environ is None else environ
    in_pod = in_cluster(environ)
    if in_pod is not None:
        return in_pod
    return from_kubeconfig(environ)


def in_cluster(environ: Mapping[str, str], account: Path = SERVICE_ACCOUNT) -> Connection | None:
    """The service account's credentials, or None outside a pod (as the official client
    decides: both variables set, the token and the CA mounted)."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    token, ca = account / "token", account / "ca.crt"
    if not host or not port or not token.is_file() or not ca.is_file():
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    connection = Connection(
        host=f"https://{host}:{port}",
        source="in-cluster service account",
        ca_file=str(ca),
        token_file=str(token),
    )
    connection.token()  # a token that cannot be read fails now, not on the first call
    return connection


def from_kubeconfig(environ: Mapping[str, str]) -> Credentials:
    """The current context of the kubeconfig kubectl would read."""
    listed = environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    if not paths:
        paths = [Path(environ.get("HOME", str(Path.home()))) / ".kube" / "config"]
    files = [path for path in paths if path.is_file()]
    if not files:
        where = f"KUBECONFIG={listed}" if listed else f"{paths[0]} (KUBECONFIG is not set)"
        raise ConfigError(
            "no cluster to talk to: not in a pod (KUBERNETES_SERVICE_HOST is not set) and "
            f"no kubeconfig at {where}"
        )
    merged = _merge(files)
    name = merged["current-context"]
    if not name:
        raise ConfigError(f"the kubeconfig ({_names(files)}) has no current-context")
    context = _named(merged, "contexts", name, files)
    cluster = _named(merged, "clusters", context.get("cluster"), files)
    user = _named(merged, "users", context.get("user"), files) if context.get("user") else {}
    if user.get("exec") or user.get("auth-provider"):
        return official_credentials(_names(files))
    server = cluster.get("server")
    if not server:
        raise ConfigError(f"cluster {context.get('cluster')!r} of the kubeconfig has no server")
    base = Path(cluster["__file__"]).parent
    user_base = Path(user.get("__file__", cluster["__file__"])).parent
    ca_data = _decoded(cluster.get("certificate-authority-data"))  # over a file, as kubectl
    return Connection(
        host=str(server),
        source=f"kubeconfig {_names(files)}, context {name}",
        ca_file=None if ca_data else _path(cluster.get("certificate-authority"), base),
        ca_data=ca_data,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=_written(user.get("client-certificate-data"))
        or _path(user.get("client-certificate"), user_base),
        key_file=_written(user.get("client-key-data")) or _path(user.get("client-key"), user_base),
        token=user.get("token"),
        token_file=_path(user.get("tokenFile"), user_base),
        username=user.get("username"),
        password=user.get("password"),
    )


def leave_out_unused_clients() -> list[str]:
    """Make the client libraries kopf would import for nothing unimportable in this
    process (`None` in `sys.modules`, as the import system documents), unless something
    imported them already. Returns the ones left out. For the operator's process only:
    the command line uses the official client."""
    left = [name for name in KOPF_OPTIONAL_CLIENTS if name not in sys.modules]
    for name in left:
        sys.modules[name] = None  # type: ignore[assignment]
    return left


class _Official:
    """Credentials from the official client's configuration (a credential plugin)."""

    official = True

    def __init__(self, configuration: Any) -> None:
        self.configuration = configuration
        self.host = str(configuration.host).rstrip("/")

    def ssl_context(self) -> ssl.SSLContext | bool:
        configuration = self.configuration
        if not self.host.startswith("https") or not configuration.verify_ssl:
            return False
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
        return context

    def authorization(self) -> dict[str, str]:
        # Refreshed as the configuration says (a plugin's token when it expires).
        bearer = self.configuration.auth_settings().get("BearerToken")
        if bearer and bearer.get("value"):
            return {"Authorization": str(bearer["value"])}
        return {}

    def login_fields(self) -> None:
        return None


def official_credentials(kubeconfig: str) -> Credentials:
    """The kubeconfig (files joined by `os.pathsep`) as the official client reads it,
    credential plugins included."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return _Official(configuration)


# -- reading the kubeconfig --------------------------------------------------------------------


def _merge(files: list[Path]) -> dict[str, Any]:
    """The files merged as kubectl merges them: the first definition of a name wins, and
    the first current-context set. Each entry remembers its file (relative paths)."""
    merged: dict[str, Any] = {"current-context": "", "contexts": {}, "clusters": {}, "users": {}}
    for path in files:
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read the kubeconfig {path}: {error}") from error
        if not isinstance(document, dict):
            raise ConfigError(f"the kubeconfig {path} is not a mapping")
        merged["current-context"] = merged["current-context"] or document.get("current-context", "")
        for kind, key in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in document.get(kind) or []:
                if isinstance(item, dict) and item.get("name") not in merged[kind]:
                    merged[kind][item.get("name")] = {**(item.get(key) or {}), "__file__": path}
    return merged


def _named(merged: dict[str, Any], kind: str, name: Any, files: list[Path]) -> dict[str, Any]:
    found = merged[kind].get(name)
    if found is None:
        raise ConfigError(f"the kubeconfig ({_names(files)}) has no {kind[:-1]} {name!r}")
    return dict(found)


def _names(files: list[Path]) -> str:
    return os.pathsep.join(str(path) for path in files)


def _path(value: Any, base: Path) -> str | None:
    return str(base / Path(str(value)).expanduser()) if value else None


def _decoded(value: Any) -> str | None:
    return base64.b64decode(str(value)).decode() if value else None


def _written(value: Any) -> str | None:
    """Inline certificate or key data, in a file of its own for the TLS library (which
    loads them from files), readable by this user only, removed at exit."""
    if not value:
        return None
    handle, name = tempfile.mkstemp(prefix="trigger-operator-", suffix=".pem")
    with os.fdopen(handle, "wb") as file:
        file.write(base64.b64decode(str(value)))
    _REMOVE_AT_EXIT.append(name)
    return name


_REMOVE_AT_EXIT: list[str] = []


def _remove_written() -> None:
    for name in _REMOVE_AT_EXIT:
        with contextlib.suppress(OSError):
            os.unlink(name)


atexit.register(_remove_written)
