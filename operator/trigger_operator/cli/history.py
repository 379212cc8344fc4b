"""`trigger-operator history`: the ledger's runs as a table for people or JSON for scripts.

The runs come from `ledger.history`, oldest first, so the most recent run is on the last
line of a table and the last element of the JSON list. Times are UTC, RFC3339.

`--since` takes an RFC3339 instant (`2026-11-01T00:00:00Z`), a date (`2026-11-01`, midnight
UTC), or an age such as `90m`, `24h`, `7d`, `2w` or `1d12h`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from trigger_operator.ledger.history import HistoryRequest, duration_seconds
from trigger_operator.ledger.records import LedgerStatus, RunKind
from trigger_operator.ledger.tables import Run
from trigger_operator.models.instants import format_instant

_AGE = re.compile(r"(?:\d+[smhdw])+")
_AGE_PART = re.compile(r"(\d+)([smhdw])")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_STATUS_STYLE = {
    LedgerStatus.PENDING: "",
    LedgerStatus.RUNNING: "cyan",
    LedgerStatus.SUCCEEDED: "green",
    LedgerStatus.FAILED: "bold red",
    LedgerStatus.SKIPPED: "dim",
    LedgerStatus.MISSED: "yellow",
    LedgerStatus.CANCELLED: "magenta",
}


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


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def run_to_json(run: Run, *, now: datetime) -> dict[str, Any]:
    """One run as a JSON object (the `-o json` form)."""
    return {
        "namespace": run.namespace,
        "trigger": run.trigger_name,
        "triggerUid": run.trigger_uid,
        "key": run.key,
        "scheduledFor": format_instant(run.scheduled_for),
        "kind": run.kind.value,
        "status": run.status.value,
        "reason": run.reason,
        "message": run.message,
        "job": run.job_name,
        "jobUid": run.job_uid,
        "attempts": run.attempts,
        "createdAt": format_instant(run.created_at),
        "updatedAt": format_instant(run.updated_at),
        "startedAt": _instant(run.started_at),
        "finishedAt": _instant(run.finished_at),
        "durationSeconds": duration_seconds(run, now=now),
        "leader": run.leader_identity,
        "revision": run.leader_revision,
        "payload": None if run.payload is None else json.loads(run.payload),
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
        cells += [run.trigger_name, format_instant(run.scheduled_for)]
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


def show_history(
    runs: Sequence[Run],
    request: HistoryRequest,
    *,
    now: datetime,
    console: Console,
    notices: Console,
    output: str = "table",
) -> None:
    """Print `runs` (oldest first) to `console`, or a note to `notices` when there are none."""
    if output == "json":
        console.file.write(render_json(runs, now=now) + "\n")
        return
    if not runs:
        where = f"namespace {request.namespace}" if request.namespace else "any namespace"
        notices.print(f"No runs found in {where}.", highlight=False)
        return
    print_wide(console, render_table(runs, now=now, show_namespace=request.namespace is None))


def print_wide(console: Console, renderable: RenderableType) -> None:
    """Print without truncating cells to a narrow terminal: long lines wrap, as kubectl's."""
    needed = Measurement.get(console, console.options.update_width(10_000), renderable).maximum
    terminal_width = console.width
    console.width = max(terminal_width, needed)
    try:
        with console.capture() as captured:
            console.print(renderable)
    finally:
        console.width = terminal_width
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
