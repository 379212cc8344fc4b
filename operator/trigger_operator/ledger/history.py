"""`trigger-operator history`: the ledger's runs as a table for people or JSON for scripts.

Shows the newest `limit` runs that match, oldest first (like `helm history`), so the most
recent run is on the last line of a table and the last element of the JSON list. Times are
UTC, RFC3339. Durations run from the Job's start to its end (to now while it runs).

`--since` takes an RFC3339 instant (`2026-11-01T00:00:00Z`), a date (`2026-11-01`, midnight
UTC), or an age such as `90m`, `24h`, `7d`, `2w` or `1d12h`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from trigger_operator.clock import Clock
from trigger_operator.ledger.engine import build_engine, database_url, display_url, sqlite_file
from trigger_operator.ledger.records import RunKind, RunStatus, rfc3339
from trigger_operator.ledger.store import LedgerStore, PruneResult, RunQuery
from trigger_operator.ledger.tables import Run
from trigger_operator.models.settings import Settings

_AGE = re.compile(r"(?:\d+[smhdw])+")
_AGE_PART = re.compile(r"(\d+)([smhdw])")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_STATUS_STYLE = {
    RunStatus.PENDING: "",
    RunStatus.RUNNING: "cyan",
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.SKIPPED: "dim",
    RunStatus.MISSED: "yellow",
    RunStatus.CANCELLED: "magenta",
}


class HistoryError(Exception):
    """The history cannot be shown; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class HistoryRequest:
    """What `history` was asked for. `namespace=None` means every namespace."""

    name: str | None = None
    namespace: str | None = None
    statuses: frozenset[RunStatus] = frozenset()
    since: datetime | None = None
    limit: int | None = 20


def parse_since(text: str, *, now: datetime) -> datetime:
    """The instant `text` names: RFC3339, a date (midnight UTC), or an age before `now`."""
    value = text.strip()
    if _AGE.fullmatch(value):
        seconds = sum(int(n) * _AGE_UNITS[unit] for n, unit in _AGE_PART.findall(value))
        return now - timedelta(seconds=seconds)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use RFC3339, a date, or an age like 24h or 7d)"
        ) from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def format_duration(seconds: float) -> str:
    """A short duration: `42s`, `3m05s`, `2h03m`, `3d04h`."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def duration_seconds(run: Run, *, now: datetime) -> float | None:
    """How long the run's Job ran (or has run so far); None if it never started."""
    if run.started_at is None:
        return None
    end = run.finished_at
    if end is None:
        if run.status is not RunStatus.RUNNING:
            return None
        end = now
    return max(0.0, (end - run.started_at).total_seconds())


def _instant(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)


def run_to_json(run: Run, *, now: datetime) -> dict[str, Any]:
    """One run as a JSON object (the `-o json` form)."""
    return {
        "namespace": run.namespace,
        "trigger": run.trigger_name,
        "triggerUid": run.trigger_uid,
        "key": run.key,
        "scheduledFor": rfc3339(run.scheduled_for),
        "kind": run.kind.value,
        "status": run.status.value,
        "reason": run.reason,
        "message": run.message,
        "job": run.job_name,
        "jobUid": run.job_uid,
        "attempts": run.attempts,
        "createdAt": rfc3339(run.created_at),
        "updatedAt": rfc3339(run.updated_at),
        "startedAt": _instant(run.started_at),
        "finishedAt": _instant(run.finished_at),
        "durationSeconds": duration_seconds(run, now=now),
        "leader": run.leader_identity,
        "revision": run.leader_revision,
    }


def render_json(runs: Sequence[Run], *, now: datetime) -> str:
    """The runs as a JSON list, in the order given."""
    return json.dumps([run_to_json(run, now=now) for run in runs], indent=2)


def render_table(runs: Sequence[Run], *, now: datetime, show_namespace: bool) -> Table:
    """The runs as a table; namespace, kind, attempts and reason only when they say something."""
    show_namespace = show_namespace or len({run.namespace for run in runs}) > 1
    show_kind = any(run.kind is not RunKind.SCHEDULED for run in runs)
    show_attempts = any(run.attempts > 1 for run in runs)
    show_reason = any(run.reason for run in runs)

    # Laid out like `kubectl get`: no borders, three spaces between columns.
    table = Table(box=None, pad_edge=False, padding=(0, 3, 0, 0), header_style="bold")
    if show_namespace:
        table.add_column("NAMESPACE", no_wrap=True)
    table.add_column("TRIGGER", no_wrap=True)
    table.add_column("SCHEDULED FOR", no_wrap=True)
    if show_kind:
        table.add_column("KIND", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    if show_attempts:
        table.add_column("ATTEMPTS", justify="right", no_wrap=True)
    table.add_column("JOB", no_wrap=True)
    if show_reason:
        table.add_column("REASON", no_wrap=True)

    for run in runs:
        seconds = duration_seconds(run, now=now)
        cells: list[str | Text] = []
        if show_namespace:
            cells.append(run.namespace)
        cells += [run.trigger_name, rfc3339(run.scheduled_for)]
        if show_kind:
            cells.append(run.kind.value)
        cells.append(Text(run.status.value, style=_STATUS_STYLE[run.status]))
        cells.append("-" if seconds is None else format_duration(seconds))
        if show_attempts:
            cells.append(str(run.attempts))
        cells.append(run.job_name or "-")
        if show_reason:
            cells.append(run.reason or "")
        table.add_row(*cells)
    return table


def open_store(settings: Settings) -> LedgerStore:
    """The store of an existing, migrated ledger; `HistoryError` if there is none."""
    url = database_url(settings)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise HistoryError(
            f"no ledger at {path}: set TRIGGER_OPERATOR_DATABASE_URL or "
            "TRIGGER_OPERATOR_SQLITE_PATH to the operator's database"
        )
    store = LedgerStore(build_engine(url))
    try:
        ready = store.ready()
    except SQLAlchemyError as error:
        store.close()
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise HistoryError(f"cannot read the ledger at {display_url(url)}: {reason}") from error
    if not ready:
        store.close()
        raise HistoryError(
            f"the ledger at {display_url(url)} has no tables yet: run `trigger-operator migrate`"
        )
    return store


def show_history(
    settings: Settings,
    request: HistoryRequest,
    *,
    clock: Clock,
    console: Console,
    notices: Console,
    output: str = "table",
) -> int:
    """Print the runs `request` asks for to `console` (notes to `notices`); returns the count."""
    store = open_store(settings)
    try:
        newest_first = store.runs(
            RunQuery(
                namespace=request.namespace,
                trigger_name=request.name,
                statuses=request.statuses,
                since=request.since,
                limit=request.limit,
            )
        )
    finally:
        store.close()
    runs = list(reversed(newest_first))
    now = clock.now()
    if output == "json":
        console.file.write(render_json(runs, now=now) + "\n")
        return len(runs)
    if not runs:
        where = f"namespace {request.namespace}" if request.namespace else "any namespace"
        notices.print(f"No runs found in {where}.", highlight=False)
        return 0
    table = render_table(runs, now=now, show_namespace=request.namespace is None)
    # Never truncate cells to fit a narrow terminal: let long lines wrap, as kubectl does.
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    terminal_width = console.width
    console.width = max(terminal_width, needed)
    try:
        with console.capture() as captured:
            console.print(table)
    finally:
        console.width = terminal_width
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    return len(runs)


def prune_history(settings: Settings, *, clock: Clock) -> tuple[datetime, PruneResult]:
    """Delete what is older than the retention; returns the cut-off and the counts."""
    cutoff = clock.now() - timedelta(days=settings.ledger_retention_days)
    store = open_store(settings)
    try:
        return cutoff, store.prune(older_than=cutoff)
    finally:
        store.close()
