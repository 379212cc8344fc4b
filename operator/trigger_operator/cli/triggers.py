"""`trigger-operator get` and `describe`: triggers as people read them, or JSON for scripts.

Everything here renders what it is given (trigger bodies as the API returns them, ledger
runs, Events): no calls, so the output is tested without a cluster. `get` is the table
of `kubectl get strig` plus the last run's result and the next three runs; `describe`
is one trigger in sections, as `kubectl describe` lays them out.

Times for people are shown in `zone` (None: the machine's local zone), to the minute or
second as they need; the JSON forms keep RFC3339 UTC instants, which scripts compare.
Colour comes from rich, which leaves it out when the output is not a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from trigger_operator.cli.history import format_duration, run_to_json
from trigger_operator.ledger.records import LedgerStatus
from trigger_operator.ledger.tables import Run
from trigger_operator.models.instants import format_instant, parse_api_time

NEXT_RUNS_SHOWN = 3

_RESULT_STYLE = {
    "Running": "cyan",
    "Succeeded": "green",
    "Failed": "bold red",
    "Cancelled": "magenta",
}
_LEDGER_STYLE = {
    LedgerStatus.RUNNING: "cyan",
    LedgerStatus.SUCCEEDED: "green",
    LedgerStatus.FAILED: "bold red",
    LedgerStatus.SKIPPED: "dim",
    LedgerStatus.MISSED: "yellow",
    LedgerStatus.CANCELLED: "magenta",
}


def local_time(instant: datetime, zone: tzinfo | None, *, seconds: bool = False) -> str:
    """`instant` on the wall clock of `zone` (None: local), with the zone's abbreviation."""
    shown = instant.astimezone(zone)
    return shown.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def age(instant: datetime | None, *, now: datetime) -> str:
    """How long ago, as kubectl's AGE column says it (`42s`, `3m05s`, `2d04h`)."""
    return "-" if instant is None else format_duration((now - instant).total_seconds())


def ready_condition(body: dict[str, Any]) -> dict[str, Any] | None:
    """The trigger's Ready condition, if it has one."""
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def _when(spec: dict[str, Any]) -> str:
    return str(spec.get("schedule") or spec.get("runAt") or "-")


def _instants(values: Sequence[Any]) -> list[datetime]:
    return [t for t in (parse_api_time(v) for v in values) if t is not None]


def trigger_summary(body: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """One trigger as `get -o json` gives it."""
    metadata, spec = body["metadata"], body.get("spec") or {}
    status = body.get("status") or {}
    ready = ready_condition(body)
    last = status.get("lastRun") or None
    return {
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "schedule": spec.get("schedule"),
        "runAt": spec.get("runAt"),
        "timeZone": spec.get("timeZone", "UTC"),
        "suspend": bool(spec.get("suspend", False)),
        "concurrencyPolicy": spec.get("concurrencyPolicy", "Allow"),
        "ready": None
        if ready is None
        else {
            "status": ready.get("status"),
            "reason": ready.get("reason"),
            "message": ready.get("message", ""),
        },
        "lastRun": last,
        "nextRuns": [format_instant(t) for t in _instants(status.get("upcomingRuns") or [])][
            :NEXT_RUNS_SHOWN
        ],
        "active": len(status.get("active") or []),
        "created": metadata.get("creationTimestamp"),
        "ageSeconds": _age_seconds(metadata.get("creationTimestamp"), now=now),
    }


def _age_seconds(value: Any, *, now: datetime) -> int | None:
    created = parse_api_time(value)
    return None if created is None else max(0, int((now - created).total_seconds()))


def render_get_json(bodies: Sequence[dict[str, Any]], *, now: datetime) -> str:
    """`get -o json`: a list of summaries."""
    return json.dumps([trigger_summary(body, now=now) for body in bodies], indent=2)


def _ready_cell(ready: dict[str, Any] | None) -> Text:
    if ready is None:
        return Text("-", style="dim")
    style = "green" if ready.get("status") == "True" else "bold red"
    return Text(str(ready.get("reason") or ready.get("status")), style=style)


def _result_cell(last: dict[str, Any] | None) -> Text:
    if not last:
        return Text("-", style="dim")
    result = str(last.get("result") or "-")
    return Text(result, style=_RESULT_STYLE.get(result, ""))


def render_get_table(
    bodies: Sequence[dict[str, Any]], *, now: datetime, zone: tzinfo | None, show_namespace: bool
) -> Table:
    """`get`: one line per trigger, as `kubectl get strig` with the last result and next runs."""
    table = _table()
    if show_namespace:
        table.add_column("NAMESPACE", no_wrap=True)
    for column in ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "READY", "LAST RESULT"):
        table.add_column(column, no_wrap=True)
    table.add_column("NEXT RUNS", no_wrap=True)
    table.add_column("ACTIVE", justify="right", no_wrap=True)
    table.add_column("AGE", justify="right", no_wrap=True)
    for body in bodies:
        metadata, spec = body["metadata"], body.get("spec") or {}
        status = body.get("status") or {}
        upcoming = _instants(status.get("upcomingRuns") or [])[:NEXT_RUNS_SHOWN]
        cells: list[str | Text] = []
        if show_namespace:
            cells.append(str(metadata.get("namespace")))
        cells += [
            str(metadata.get("name")),
            _when(spec),
            str(spec.get("timeZone", "UTC")),
            "True" if spec.get("suspend") else "False",
            _ready_cell(ready_condition(body)),
            _result_cell(status.get("lastRun")),
            # To the second only for schedules that need it (seconds fields).
            ", ".join(
                local_time(t, zone, seconds=any(u.second for u in upcoming)) for t in upcoming
            )
            or "-",
            str(len(status.get("active") or [])),
            age(parse_api_time(metadata.get("creationTimestamp")), now=now),
        ]
        table.add_row(*cells)
    return table


# -- describe ------------------------------------------------------------------------------


def _event_json(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "count": event.get("count") or 1,
        "lastTimestamp": event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp"),
    }


def describe_document(
    body: dict[str, Any],
    *,
    runs: Sequence[Run],
    events: Sequence[dict[str, Any]],
    ledger_error: str | None,
    now: datetime,
) -> dict[str, Any]:
    """`describe -o json`: the summary, the spec, status, last runs and Events."""
    status = body.get("status") or {}
    return {
        **trigger_summary(body, now=now),
        "spec": {k: v for k, v in (body.get("spec") or {}).items() if k != "jobTemplate"},
        "upcomingRuns": [format_instant(t) for t in _instants(status.get("upcomingRuns") or [])],
        "nextRunAt": status.get("nextRunAt"),
        "activeRuns": [a.get("name") for a in status.get("active") or []],
        "missedRuns": status.get("missedRuns", 0),
        "consecutiveFailures": (status.get("failures") or {}).get("consecutive", 0),
        "queued": status.get("queued"),
        "backfill": status.get("backfill"),
        "conditions": status.get("conditions") or [],
        "lastRuns": [run_to_json(run, now=now) for run in runs],
        "ledgerError": ledger_error,
        "events": [_event_json(event) for event in events],
    }


def _field(label: str, value: str | Text) -> Table:
    row = Table.grid(padding=(0, 1))
    row.add_column(width=20, no_wrap=True)
    row.add_column()
    row.add_row(Text(f"{label}:", style="bold"), value)
    return row


def _spec_lines(doc: dict[str, Any]) -> list[RenderableType]:
    spec = doc["spec"]
    lines: list[RenderableType] = [
        _field("Name", str(doc["name"])),
        _field("Namespace", str(doc["namespace"])),
    ]
    if spec.get("runAt"):
        lines.append(_field("Run at", str(spec["runAt"])))
    else:
        lines.append(_field("Schedule", f"{spec.get('schedule')} ({doc['timeZone']})"))
    lines.append(_field("Suspend", "True" if doc["suspend"] else "False"))
    lines.append(_field("Concurrency", str(doc["concurrencyPolicy"])))
    for label, key in (
        ("Starting deadline", "startingDeadlineSeconds"),
        ("Catch up", "catchUp"),
        ("Jitter", "jitterSeconds"),
    ):
        if key in spec:
            lines.append(_field(label, str(spec[key])))
    policy = spec.get("failurePolicy") or {}
    if policy.get("suspendAfterConsecutiveFailures"):
        lines.append(
            _field(
                "Failure policy",
                f"suspend after {policy['suspendAfterConsecutiveFailures']} consecutive "
                f"failures ({doc['consecutiveFailures']} now)",
            )
        )
    if spec.get("payload") is not None:
        lines.append(_field("Payload", json.dumps(spec["payload"], sort_keys=True)))
    return lines


def _status_lines(doc: dict[str, Any], *, zone: tzinfo | None) -> list[RenderableType]:
    ready = doc["ready"]
    ready_text = Text("-") if ready is None else _ready_cell(ready)
    if ready is not None and ready.get("message"):
        ready_text = Text.assemble(ready_text, "  ", str(ready["message"]))
    upcoming = _instants(doc["upcomingRuns"])
    lines: list[RenderableType] = [
        _field("Ready", ready_text),
        _field(
            "Next runs",
            "\n".join(
                f"{local_time(t, zone, seconds=any(u.second for u in upcoming))}  "
                f"({format_instant(t)})"
                for t in upcoming
            )
            or "none",
        ),
        _field("Active", ", ".join(doc["activeRuns"]) or "none"),
        _field("Missed runs", str(doc["missedRuns"])),
    ]
    queued = doc.get("queued")
    if queued:
        held = parse_api_time(queued.get("scheduledFor"))
        lines.append(_field("Queued", local_time(held, zone) if held else str(queued)))
    backfill = doc.get("backfill")
    if backfill:
        lines.append(_field("Backfill", _backfill_text(backfill)))
    return lines


def _backfill_text(backfill: dict[str, Any]) -> str:
    return (
        f"{backfill.get('id')}: {backfill.get('phase')}, {backfill.get('started', 0)} of "
        f"{backfill.get('planned', 0)} started, {backfill.get('succeeded', 0)} succeeded, "
        f"{backfill.get('failed', 0)} failed, {backfill.get('left', 0)} left as they were"
    )


def _runs_table(runs: Sequence[Run], *, now: datetime, zone: tzinfo | None) -> Table:
    table = _table()
    for column in ("SCHEDULED FOR", "KIND", "STATUS", "DURATION", "JOB", "REASON"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        seconds = run_to_json(run, now=now)["durationSeconds"]
        table.add_row(
            local_time(run.scheduled_for, zone, seconds=True),
            run.kind.value,
            Text(run.status.value, style=_LEDGER_STYLE.get(run.status, "")),
            "-" if seconds is None else format_duration(seconds),
            run.job_name or "-",
            run.reason or "",
        )
    return table


def _conditions_table(conditions: Sequence[dict[str, Any]], *, now: datetime) -> Table:
    table = _table()
    for column in ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"):
        table.add_column(column, no_wrap=column != "MESSAGE")
    for condition in conditions:
        table.add_row(
            str(condition.get("type")),
            str(condition.get("status")),
            str(condition.get("reason")),
            age(parse_api_time(condition.get("lastTransitionTime")), now=now),
            str(condition.get("message") or ""),
        )
    return table


def _events_table(events: Sequence[dict[str, Any]], *, now: datetime) -> Table:
    table = _table()
    for column in ("TYPE", "REASON", "AGE", "COUNT", "MESSAGE"):
        table.add_column(column, no_wrap=column != "MESSAGE")
    for event in events:
        kind = str(event.get("type") or "")
        table.add_row(
            Text(kind, style="yellow" if kind == "Warning" else ""),
            str(event.get("reason")),
            age(parse_api_time(event.get("lastTimestamp")), now=now),
            str(event.get("count")),
            str(event.get("message") or ""),
        )
    return table


def render_describe(
    doc: dict[str, Any], *, runs: Sequence[Run], now: datetime, zone: tzinfo | None
) -> RenderableType:
    """`describe`: one trigger in sections."""
    parts: list[RenderableType] = [*_spec_lines(doc), *_status_lines(doc, zone=zone)]
    parts.append(Text("Last runs (ledger):", style="bold"))
    if doc["ledgerError"]:
        parts.append(Text(f"  {doc['ledgerError']}", style="yellow"))
    elif runs:
        parts.append(_indented(_runs_table(runs, now=now, zone=zone)))
    else:
        parts.append(Text("  none"))
    parts.append(Text("Conditions:", style="bold"))
    parts.append(_indented(_conditions_table(doc["conditions"], now=now)))
    parts.append(Text("Events:", style="bold"))
    if doc["events"]:
        parts.append(_indented(_events_table(doc["events"], now=now)))
    else:
        parts.append(Text("  none"))
    return Group(*parts)


def _indented(table: Table) -> Table:
    grid = Table.grid()
    grid.add_column(width=2)
    grid.add_column()
    grid.add_row("", table)
    return grid


def _table() -> Table:
    # Laid out like `kubectl get`: no borders, three spaces between columns.
    return Table(box=None, pad_edge=False, padding=(0, 3, 0, 0), header_style="bold")
