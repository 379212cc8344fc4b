"""The `trigger-operator` command: run, preview, history, migrate, run-now, dev-cluster.

Each command only wires: it builds settings and calls into the package.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trigger-operator")
def main() -> None:
    """Run ScheduledTrigger resources as idempotent one-shot Kubernetes Jobs."""
