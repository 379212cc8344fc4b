"""Where the control plane's binaries live, and building them when they are missing.

The binaries are built from the pinned Go modules under `hack/` by
`hack/build-control-plane.sh` into a cache outside the repository
(`$TRIGGER_OPERATOR_CACHE`, else `$XDG_CACHE_HOME/trigger-operator`, else
`~/.cache/trigger-operator`), once per machine.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


class BinariesMissing(RuntimeError):
    """The binaries are not built and cannot be built from here."""


@dataclass(frozen=True)
class Binaries:
    """The folder that holds one build of every control-plane binary."""

    directory: Path

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.directory / "kube-apiserver"

    @property
    def kube_controller_manager(self) -> Path:
        return self.directory / "kube-controller-manager"

    @property
    def kube_scheduler(self) -> Path:
        return self.directory / "kube-scheduler"

    @property
    def kubectl(self) -> Path:
        return self.directory / "kubectl"

    @property
    def kwok(self) -> Path:
        return self.directory / "kwok"

    def missing(self) -> list[str]:
        return [name for name in NAMES if not os.access(self.directory / name, os.X_OK)]


def cache_root() -> Path:
    explicit = os.environ.get("TRIGGER_OPERATOR_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "trigger-operator"


def default() -> Binaries:
    return Binaries(cache_root() / f"k8s-{KUBERNETES_VERSION}")


def find_repo_root(start: Path | None = None) -> Path | None:
    """The checkout that holds `hack/build-control-plane.sh`, if we run from one."""
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        if (folder / "hack" / "build-control-plane.sh").is_file():
            return folder
    cwd = Path.cwd().resolve()
    for folder in [cwd, *cwd.parents]:
        if (folder / "hack" / "build-control-plane.sh").is_file():
            return folder
    return None


def ensure() -> Binaries:
    """Return the binaries, building them first when any is missing (progress on stderr)."""
    binaries = default()
    if not binaries.missing():
        return binaries
    root = find_repo_root()
    if root is None:
        raise BinariesMissing(
            f"control-plane binaries missing in {binaries.directory} "
            f"({', '.join(binaries.missing())}) and no checkout with hack/ to build them from"
        )
    subprocess.run(["bash", str(root / "hack" / "build-control-plane.sh")], check=True)
    if binaries.missing():
        raise BinariesMissing(f"build finished but {', '.join(binaries.missing())} missing")
    return binaries
