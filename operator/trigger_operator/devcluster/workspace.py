"""The `.dev/` folder of a checkout: the long-lived dev cluster that `make run` uses.

`.dev/cluster/` holds the cluster's state, `.dev/kubeconfig` its admin kubeconfig and
`.dev/bin/kubectl` the kubectl built with it, so `export KUBECONFIG=$PWD/.dev/kubeconfig
PATH=$PWD/.dev/bin:$PATH` is all a shell needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trigger_operator.devcluster import binaries
from trigger_operator.devcluster.cluster import DevCluster, Log


def cluster_for(dev_dir: Path, *, nodes: int = 1, log: Log = print) -> DevCluster:
    return DevCluster(dev_dir / "cluster", binaries.default(), nodes=nodes, log=log)


def up(dev_dir: Path, *, nodes: int = 1, log: Log = print) -> DevCluster:
    """Build the binaries when missing, start a fresh cluster, publish kubeconfig and kubectl."""
    built = binaries.ensure()
    cluster = DevCluster(dev_dir / "cluster", built, nodes=nodes, log=log)
    cluster.start()
    shutil.copyfile(cluster.kubeconfig, dev_dir / "kubeconfig")
    (dev_dir / "kubeconfig").chmod(0o600)
    bin_dir = dev_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "kubectl"
    link.unlink(missing_ok=True)
    link.symlink_to(built.kubectl)
    return cluster


def down(dev_dir: Path, *, log: Log = print) -> bool:
    """Stop the cluster of this folder; False when none was running."""
    cluster = cluster_for(dev_dir, log=log)
    was_running = cluster.running()
    cluster.stop()
    (dev_dir / "kubeconfig").unlink(missing_ok=True)
    return was_running
