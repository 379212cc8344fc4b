"""The `trigger-operator` command: run, get, describe, preview, history, migrate, run-now,
backfill, resume, crd, dev-cluster.

Each command only wires: it builds settings, calls into the package and prints the result.
The same group is the kubectl plugin `kubectl strig` (`kubectl_plugin`). Start-up time
matters for a command a person types: the Kubernetes client, SQLAlchemy and rich are
imported inside the commands that need them, never at the top of this module.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trigger_operator.cli.preview import preview
from trigger_operator.models.settings import Settings

if TYPE_CHECKING:
    from trigger_operator.clock import Clock
    from trigger_operator.models.requests import BackfillRequest


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trigger-operator")
def main() -> None:
    """Run ScheduledTrigger resources as idempotent one-shot Kubernetes Jobs."""


def kubectl_plugin() -> None:
    """`kubectl strig ...`: the same commands, named as kubectl's plugin (`kubectl-strig`)."""
    main(prog_name="kubectl strig")


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


_DATABASE_URL = click.option(
    "--database-url",
    metavar="URL",
    help="The ledger database (default: TRIGGER_OPERATOR_DATABASE_URL, else the SQLite file).",
)


def _ledger_settings(database_url: str | None) -> Settings:
    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def _kubeconfig_namespace() -> str:
    # Imported here: the Kubernetes client is slow to import, and only this needs it.
    from trigger_operator.kube.requests import context_namespace

    return context_namespace()


@main.command("history")
@click.argument("name", required=False)
@click.option("-n", "--namespace", help="Only this namespace (default: the kubeconfig's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Runs in every namespace.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Only runs with this status (repeat, or separate with commas): "
    "pending, running, succeeded, failed, skipped, missed, cancelled.",
)
@click.option("--since", metavar="T", help="Only runs scheduled since T: RFC3339, a date, or 24h.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="0: no limit."
)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete runs older than TRIGGER_OPERATOR_LEDGER_RETENTION_DAYS instead, and exit.",
)
@_DATABASE_URL
def history(
    name: str | None,
    namespace: str | None,
    all_namespaces: bool,
    statuses: tuple[str, ...],
    since: str | None,
    limit: int,
    output: str,
    prune: bool,
    database_url: str | None,
) -> None:
    """Show the runs of triggers from the run ledger, newest last."""
    from rich.console import Console

    from trigger_operator.cli.history import parse_since, show_history
    from trigger_operator.clock import SystemClock
    from trigger_operator.ledger.history import (
        HistoryError,
        HistoryRequest,
        find_runs,
        prune_history,
    )
    from trigger_operator.ledger.records import LedgerStatus
    from trigger_operator.models.instants import format_instant

    clock = SystemClock()
    settings = _ledger_settings(database_url)
    try:
        if prune:
            cutoff, pruned = prune_history(settings, clock=clock)
            click.echo(
                f"deleted {pruned.runs} runs and {pruned.leadership_changes} leadership "
                f"changes from before {format_instant(cutoff)}"
            )
            return
        if namespace and all_namespaces:
            raise click.UsageError("use either -n/--namespace or -A/--all-namespaces")
        try:
            wanted = frozenset(
                LedgerStatus(part.strip().lower())
                for value in statuses
                for part in value.split(",")
                if part.strip()
            )
            start = parse_since(since, now=clock.now()) if since else None
        except ValueError as error:
            raise click.BadParameter(str(error)) from error
        request = HistoryRequest(
            name=name,
            namespace=None if all_namespaces else (namespace or _kubeconfig_namespace()),
            statuses=wanted,
            since=start,
            limit=limit or None,
        )
        show_history(
            find_runs(settings, request),
            request,
            now=clock.now(),
            console=Console(),
            notices=Console(stderr=True),
            output=output,
        )
    except HistoryError as error:
        raise click.ClickException(str(error)) from error


_OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@main.command("get")
@click.option("-n", "--namespace", help="Only this namespace (default: the kubeconfig's).")
@click.option("-A", "--all-namespaces", is_flag=True, help="Triggers in every namespace.")
@_OUTPUT
def get(namespace: str | None, all_namespaces: bool, output: str) -> None:
    """List triggers: schedule, readiness, the last run's result and the next three runs."""
    from rich.console import Console

    from trigger_operator.cli.history import print_wide
    from trigger_operator.cli.triggers import render_get_json, render_get_table
    from trigger_operator.clock import SystemClock
    from trigger_operator.kube.gateway import KubeError
    from trigger_operator.kube.requests import list_triggers, load_api_client

    if namespace and all_namespaces:
        raise click.UsageError("use either -n/--namespace or -A/--all-namespaces")
    where = None if all_namespaces else (namespace or _kubeconfig_namespace())
    try:
        bodies = list_triggers(load_api_client(), where)
    except KubeError as error:
        raise click.ClickException(str(error)) from error
    now = SystemClock().now()
    if output == "json":
        click.echo(render_get_json(bodies, now=now))
        return
    if not bodies:
        click.echo(
            f"No triggers found in {f'namespace {where}' if where else 'any namespace'}.", err=True
        )
        return
    table = render_get_table(bodies, now=now, zone=None, show_namespace=where is None)
    print_wide(Console(), table)


@main.command("describe")
@click.argument("name")
@click.option("-n", "--namespace", help="Default: the kubeconfig's namespace.")
@click.option(
    "--runs",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many of the last runs to show from the ledger.",
)
@_OUTPUT
@_DATABASE_URL
def describe(
    name: str, namespace: str | None, runs: int, output: str, database_url: str | None
) -> None:
    """Show one trigger: its spec, upcoming and last runs, conditions and recent Events."""
    from rich.console import Console

    from trigger_operator.cli.history import print_wide
    from trigger_operator.cli.triggers import describe_document, render_describe
    from trigger_operator.clock import SystemClock
    from trigger_operator.kube.gateway import KubeError
    from trigger_operator.kube.requests import load_api_client, read_trigger, trigger_events
    from trigger_operator.ledger.history import HistoryError, HistoryRequest, find_runs
    from trigger_operator.ledger.tables import Run

    where = namespace or _kubeconfig_namespace()
    api = load_api_client()
    try:
        body = read_trigger(api, where, name)
        events = trigger_events(api, where, name)
    except KubeError as error:
        raise click.ClickException(str(error)) from error
    found: list[Run] = []
    ledger_error: str | None = None
    if runs:
        try:
            request = HistoryRequest(name=name, namespace=where, limit=runs)
            found = [
                run
                for run in find_runs(_ledger_settings(database_url), request)
                if run.trigger_uid == body["metadata"]["uid"]
            ]
        except HistoryError as error:
            ledger_error = str(error)
    now = SystemClock().now()
    doc = describe_document(body, runs=found, events=events, ledger_error=ledger_error, now=now)
    if output == "json":
        import json

        click.echo(json.dumps(doc, indent=2))
        return
    print_wide(Console(), render_describe(doc, runs=found, now=now, zone=None))


@main.command("migrate")
@_DATABASE_URL
def migrate(database_url: str | None) -> None:
    """Upgrade the run ledger's database schema to the newest revision."""
    from trigger_operator.ledger.migrate import MigrationFailed, migrate_database

    try:
        report = migrate_database(_ledger_settings(database_url))
    except MigrationFailed as error:
        raise click.ClickException(str(error)) from error
    if report.before == report.after:
        click.echo(f"ledger at {report.database} is up to date (revision {report.after})")
    else:
        click.echo(
            f"ledger at {report.database} migrated from revision {report.before or 'none'} "
            f"to {report.after}"
        )


main.add_command(preview)


@main.command("crd")
@click.option(
    "--kind",
    type=click.Choice(["ScheduledTrigger", "ScheduleCalendar"]),
    default="ScheduledTrigger",
    show_default=True,
)
def crd(kind: str) -> None:
    """Print a CustomResourceDefinition, generated from the models."""
    from trigger_operator.models.crd import render_calendar_crd, render_crd

    click.echo(render_calendar_crd() if kind == "ScheduleCalendar" else render_crd(), nl=False)


@main.command("run")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--log-format", type=click.Choice(["logfmt", "json"]), default="logfmt", show_default=True
)
def run(log_level: str, log_format: str) -> None:
    """Run the operator (settings from TRIGGER_OPERATOR_* variables; see the README)."""
    from trigger_operator.kube.connection import (
        ConfigError,
        leave_out_unused_clients,
        load_credentials,
    )

    try:
        credentials = load_credentials()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if not credentials.official:
        # Before kopf is imported: it would import the official client only to
        # recognise its classes, a fifth of the process's memory for nothing.
        leave_out_unused_clients()
    from trigger_operator import logs
    from trigger_operator.handlers.app import serve
    from trigger_operator.leadership.elector import LeaseUnusable
    from trigger_operator.leadership.revision import RevisionUnknown

    logs.configure(log_level, log_format)
    try:
        serve(Settings(), credentials)
    except (RevisionUnknown, LeaseUnusable) as error:
        raise click.ClickException(str(error)) from error


@main.command("run-now")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Default: the kubeconfig's namespace.")
@click.option(
    "--value",
    default=None,
    help="The idempotency key: the same value never starts a second run. Default: a new one.",
)
@click.option("--payload", default=None, metavar="JSON", help="This run's TRIGGER_PAYLOAD.")
@click.option(
    "--payload-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="This run's TRIGGER_PAYLOAD, read from a file.",
)
@click.option("--wait", is_flag=True, help="Wait for the run to finish; exit 1 if it fails.")
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=600, show_default=True, help="Seconds."
)
def run_now(
    name: str,
    namespace: str | None,
    value: str | None,
    payload: str | None,
    payload_file: Path | None,
    wait: bool,
    timeout: float,
) -> None:
    """Start one extra run of trigger NAME now, and print its Job's name.

    Sets the triggers.dev/run-now annotation (and, with a payload, triggers.dev/run-now-payload);
    the trigger's own payload is left as it is.
    """
    from trigger_operator.cli.control import (
        RunOutcome,
        job_outcome,
        read_payload,
        refused_run_now,
        wait_until,
    )
    from trigger_operator.clock import SystemClock
    from trigger_operator.jobs.builder import ANNOTATION_RUN_NOW, TriggerRef, manual_job_name
    from trigger_operator.kube.gateway import KubeError
    from trigger_operator.kube.requests import (
        annotate_trigger,
        load_api_client,
        read_job,
        read_trigger,
    )
    from trigger_operator.models.instants import format_instant
    from trigger_operator.models.requests import (
        ANNOTATION_RUN_NOW_PAYLOAD,
        RequestError,
        run_now_payload_annotation,
    )

    clock = SystemClock()
    given, document = read_payload(payload, payload_file)
    value = value or f"cli-{format_instant(clock.now())}"
    try:
        payload_text = run_now_payload_annotation(value, document) if given else None
    except RequestError as error:
        raise click.BadParameter(str(error)) from error
    where = namespace or _kubeconfig_namespace()
    api = load_api_client()
    try:
        trigger = read_trigger(api, where, name)
        # Both in one patch: the operator never sees the new value with a stale payload.
        annotate_trigger(
            api,
            where,
            name,
            {ANNOTATION_RUN_NOW: value, ANNOTATION_RUN_NOW_PAYLOAD: payload_text},
        )
    except KubeError as error:
        raise click.ClickException(str(error)) from error
    ref = TriggerRef(namespace=where, name=name, uid=trigger["metadata"]["uid"])
    job_name = manual_job_name(ref, value)
    click.echo(f"run requested for {name} with run-now value {value}", err=True)
    click.echo(job_name)
    if not wait:
        return

    def finished() -> RunOutcome | None:
        outcome = job_outcome(read_job(api, where, job_name))
        if outcome is None and (refused := refused_run_now(read_trigger(api, where, name), value)):
            return RunOutcome(ok=False, text=f"run-now {value} refused: {refused}")
        return outcome

    try:
        outcome = wait_until(
            finished, timeout=timeout, what=f"job/{job_name}", monotonic=clock.monotonic
        )
    except KubeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(outcome.text)
    if not outcome.ok:
        raise SystemExit(1)


@main.command("resume")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Default: the kubeconfig's namespace.")
@click.option("--value", default=None, help="The request's key. Default: a new one.")
def resume(name: str, namespace: str | None, value: str | None) -> None:
    """Resume trigger NAME after spec.failurePolicy suspended it (sets triggers.dev/resume).

    Times that passed while it was suspended are not run; the next run is the next time.
    """
    from trigger_operator.clock import SystemClock
    from trigger_operator.kube.gateway import KubeError
    from trigger_operator.kube.requests import annotate_trigger, load_api_client, read_trigger
    from trigger_operator.models.instants import format_instant
    from trigger_operator.models.requests import ANNOTATION_RESUME

    where = namespace or _kubeconfig_namespace()
    api = load_api_client()
    try:
        trigger = read_trigger(api, where, name)
        if (trigger.get("spec") or {}).get("suspend"):
            raise click.ClickException(
                f"{name} has spec.suspend: true; that is the spec's to change (edit it), "
                "not a request's"
            )
        failures = (trigger.get("status") or {}).get("failures") or {}
        if not failures.get("suspendedAt"):
            click.echo(f"{name} is not suspended after failures; nothing to resume", err=True)
            return
        value = value or f"cli-{format_instant(SystemClock().now())}"
        annotate_trigger(api, where, name, {ANNOTATION_RESUME: value})
    except KubeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"resume requested for {name} with value {value}")


@main.command("backfill")
@click.argument("name")
@click.option("-n", "--namespace", default=None, help="Default: the kubeconfig's namespace.")
@click.option("--from", "start", required=True, metavar="T", help="RFC3339, a date, or an age.")
@click.option("--to", "end", default="now", show_default=True, metavar="T", help="Inclusive.")
@click.option("--max-runs", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 10), default=1, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what it would start and leave, and why.")
@click.option("--wait", is_flag=True, help="Follow its progress; exit 1 if a run failed.")
@click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True)
@click.option("--id", "ident", default=None, help="The request's id. Default: a new one.")
@_OUTPUT
@_DATABASE_URL
def backfill(
    name: str,
    namespace: str | None,
    start: str,
    end: str,
    max_runs: int,
    concurrency: int,
    dry_run: bool,
    wait: bool,
    timeout: float,
    ident: str | None,
    output: str,
    database_url: str | None,
) -> None:
    """Start the scheduled times of NAME in [--from, --to] that never ran.

    A time that ran (a Job, or a ledger row of a run), or was skipped on purpose, is left
    as it is; missed times and times the ledger does not know are started, oldest first,
    each under its scheduled time's own Job name.
    """
    from trigger_operator.cli.history import parse_since
    from trigger_operator.clock import SystemClock
    from trigger_operator.kube.gateway import KubeError
    from trigger_operator.kube.requests import annotate_trigger, load_api_client, read_trigger
    from trigger_operator.models.instants import format_instant
    from trigger_operator.models.requests import ANNOTATION_BACKFILL, BackfillRequest

    clock = SystemClock()
    now = clock.now()
    try:
        first = parse_since(start, now=now)
        last = now if end.strip() == "now" else parse_since(end, now=now)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    if last < first:
        raise click.BadParameter(f"--to {format_instant(last)} is before --from")
    request = BackfillRequest(
        id=ident or f"bf-{format_instant(now)}",
        start=first,
        end=last,
        max_runs=max_runs,
        concurrency=concurrency,
    )
    where = namespace or _kubeconfig_namespace()
    api = load_api_client()
    try:
        trigger = read_trigger(api, where, name)
        if dry_run:
            _backfill_dry_run(api, trigger, request, database_url, output=output, now=now)
            return
        annotate_trigger(api, where, name, {ANNOTATION_BACKFILL: request.annotation()})
    except KubeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"backfill {request.id} requested for {name}: "
        f"[{format_instant(first)}, {format_instant(last)}]"
    )
    if wait:
        _follow_backfill(api, where, name, request.id, timeout=timeout, clock=clock)


def _backfill_dry_run(
    api: Any,
    trigger: dict[str, Any],
    request: BackfillRequest,
    database_url: str | None,
    *,
    output: str,
    now: datetime,
) -> None:
    """Plan as the operator will, from the ledger and the Jobs, and print it."""
    import json

    from trigger_operator.cli.control import backfill_dry_run_lines
    from trigger_operator.jobs.builder import LABEL_TRIGGER_UID
    from trigger_operator.jobs.state import observe_job
    from trigger_operator.kube.requests import list_calendars, list_jobs
    from trigger_operator.ledger.history import HistoryError, open_store
    from trigger_operator.models.instants import format_instant
    from trigger_operator.models.spec import TriggerSpec
    from trigger_operator.schedule.backfill import BackfillTooLarge, plan_backfill
    from trigger_operator.schedule.errors import ScheduleError
    from trigger_operator.schedule.times import schedule_of
    from trigger_operator.scheduler.backfill import known_times
    from trigger_operator.scheduler.calendars import CalendarStore

    metadata = trigger["metadata"]
    until = min(request.end, now)
    try:
        spec = TriggerSpec.model_validate(trigger["spec"])
        store = open_store(_ledger_settings(database_url))
        try:
            ledger = store.scheduled_runs(metadata["uid"], since=request.start, until=until)
        finally:
            store.close()
        jobs = {
            job.name: job
            for job in map(
                observe_job,
                list_jobs(api, metadata["namespace"], f"{LABEL_TRIGGER_UID}={metadata['uid']}"),
            )
        }
        known = known_times(ledger, jobs, start=request.start, end=until)
        calendars = CalendarStore()
        for body in list_calendars(api, metadata["namespace"]):
            calendars.upsert(body)
        exclusions = calendars.resolve(metadata["namespace"], spec)
        plan = plan_backfill(
            schedule_of(spec),
            start=request.start,
            end=request.end,
            now=now,
            known=known,
            max_runs=request.max_runs,
            excluded_by=exclusions.excluded_by,
        )
    except (HistoryError, ScheduleError, BackfillTooLarge, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if output == "json":
        document = {
            "start": [format_instant(t) for t in plan.start],
            "leave": [{"scheduledFor": format_instant(t), "reason": r.value} for t, r in plan.left],
        }
        click.echo(json.dumps(document, indent=2))
        return
    for line in backfill_dry_run_lines(
        plan, start=format_instant(request.start), end=format_instant(request.end)
    ):
        click.echo(line)


def _follow_backfill(
    api: Any, namespace: str, name: str, ident: str, *, timeout: float, clock: Clock
) -> None:
    """A progress bar of the backfill's runs until it completes; exit 1 if one failed."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from trigger_operator.cli.control import backfill_outcome
    from trigger_operator.kube.requests import read_trigger

    console = Console(stderr=True)
    deadline = clock.monotonic() + timeout
    found: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"backfill {ident}", total=None)
        while True:
            seen = backfill_outcome(read_trigger(api, namespace, name), ident)
            if seen is not None:
                found = seen
                done = (
                    found.get("succeeded", 0) + found.get("failed", 0) + found.get("cancelled", 0)
                )
                progress.update(task, total=found.get("planned", 0), completed=done)
                if found.get("phase") in ("Complete", "Invalid"):
                    break
            if clock.monotonic() >= deadline:
                raise click.ClickException(
                    f"gave up waiting for backfill {ident} after {timeout:.0f}s"
                )
            time.sleep(1.0)
    click.echo(found.get("message") or found.get("phase"))
    if found.get("phase") == "Invalid" or found.get("failed", 0):
        raise SystemExit(1)
