"""The `trigger-operator` command: run, preview, history, migrate, run-now, dev-cluster.

Each command only wires: it builds settings and calls into the package.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trigger-operator")
def main() -> None:
    """Run ScheduledTrigger resources as idempotent one-shot Kubernetes Jobs."""


@main.group("dev-cluster")
def dev_cluster() -> None:
    """The local control plane (etcd, API server, controllers, scheduler, kwok)."""


_DEV_DIR = click.option(
    "--dev-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".dev"),
    show_default=True,
    help="Folder for the cluster's state, kubeconfig and kubectl.",
)


@dev_cluster.command("up")
@_DEV_DIR
@click.option("--nodes", type=click.IntRange(1, 100), default=1, show_default=True)
def dev_cluster_up(dev_dir: Path, nodes: int) -> None:
    """Start a fresh dev cluster (building its binaries first when missing)."""
    from trigger_operator.devcluster import workspace
    from trigger_operator.devcluster.cluster import ClusterError

    dev_dir.mkdir(parents=True, exist_ok=True)
    try:
        workspace.up(dev_dir, nodes=nodes, log=lambda line: click.echo(line, err=True))
    except ClusterError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"export KUBECONFIG={(dev_dir / 'kubeconfig').resolve()}")
    click.echo(f"export PATH={(dev_dir / 'bin').resolve()}:$PATH")


@dev_cluster.command("down")
@_DEV_DIR
def dev_cluster_down(dev_dir: Path) -> None:
    """Stop the dev cluster and every process of it."""
    from trigger_operator.devcluster import workspace

    if not workspace.down(dev_dir, log=lambda line: click.echo(line, err=True)):
        click.echo("no dev cluster was running", err=True)


@dev_cluster.command("status")
@_DEV_DIR
def dev_cluster_status(dev_dir: Path) -> None:
    """Say whether the dev cluster runs, and where."""
    from trigger_operator.devcluster import workspace

    cluster = workspace.cluster_for(dev_dir)
    if not cluster.running():
        click.echo("stopped")
        raise SystemExit(1)
    click.echo(f"running; kubeconfig {(dev_dir / 'kubeconfig').resolve()}")
