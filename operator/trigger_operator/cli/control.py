"""Commands that ask the operator for work: run-now, resume, backfill.

Each sets `triggers.dev/` annotations on the trigger in one merge patch
(`kube.requests.annotate_trigger`, `models.requests` for their form) and, when asked to
wait, follows what the operator does through the trigger's status and its Jobs. The
operator alone starts Jobs; a command never creates one itself, so the guarantees of
the scheduler (one Job per run, the ledger complete) hold for what people ask too.

Waiting polls once a second, with a deadline; it never depends on watching, so it
works through any proxy kubectl works through.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from trigger_operator.jobs.state import ObservedJob, RunResult, observe_job
from trigger_operator.models.instants import format_instant

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RunOutcome:
    """How a requested run ended, as the command reports it."""

    ok: bool
    text: str


def job_outcome(job: dict[str, Any] | None) -> RunOutcome | None:
    """The outcome a Job shows, or None while it has not finished (or does not exist)."""
    if job is None:
        return None
    run: ObservedJob = observe_job(job)
    if run.result is RunResult.SUCCEEDED:
        return RunOutcome(ok=True, text=f"job/{run.name} succeeded")
    if run.result is RunResult.FAILED:
        detail = ": ".join(part for part in (run.reason, run.message) if part)
        return RunOutcome(
            ok=False, text=f"job/{run.name} failed" + (f": {detail}" if detail else "")
        )
    return None


def refused_run_now(trigger: dict[str, Any], value: str) -> str | None:
    """Why the operator refused run-now `value`, when status says it did."""
    for record in (trigger.get("status") or {}).get("runNow") or []:
        if record.get("value") == value and record.get("refused"):
            return str(record["refused"])
    return None


def read_payload(payload: str | None, payload_file: Path | None) -> tuple[bool, Any]:
    """(given, payload) from --payload or --payload-file; a clear error when not JSON."""
    if payload is not None and payload_file is not None:
        raise click.UsageError("use either --payload or --payload-file")
    if payload is None and payload_file is None:
        return False, None
    source = "--payload" if payload is not None else str(payload_file)
    try:
        text = payload if payload is not None else Path(payload_file or "").read_text()
    except OSError as error:
        raise click.BadParameter(f"cannot read {payload_file}: {error.strerror}") from error
    try:
        return True, json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"{source} is not JSON: {error}") from error


def wait_until(
    check: Callable[[], RunOutcome | None],
    *,
    timeout: float,
    what: str,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Poll `check` until it answers, or fail after `timeout` seconds."""
    deadline = monotonic() + timeout
    while True:
        outcome = check()
        if outcome is not None:
            return outcome
        if monotonic() >= deadline:
            raise click.ClickException(f"gave up waiting for {what} after {timeout:.0f}s")
        sleep(POLL_SECONDS)


def backfill_dry_run_lines(plan: Any, *, start: str, end: str) -> list[str]:
    """`backfill --dry-run`: each time in order, what the backfill would do and why."""
    rows = [(t, "start", "") for t in plan.start] + [(t, "leave", r.value) for t, r in plan.left]
    rows.sort(key=lambda row: row[0])
    lines = [
        f"would start {len(plan.start)} and leave {len(plan.left)} of the scheduled times "
        f"in [{start}, {end}]"
    ]
    for moment, action, reason in rows:
        lines.append(f"{action}  {format_instant(moment)}" + (f"  {reason}" if reason else ""))
    return lines


def backfill_outcome(trigger: dict[str, Any], ident: str) -> dict[str, Any] | None:
    """The status of backfill `ident`, once the operator has taken it up."""
    backfill = (trigger.get("status") or {}).get("backfill") or None
    if backfill is None or backfill.get("id") != ident:
        return None
    return dict(backfill)
