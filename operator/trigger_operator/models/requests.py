"""What people ask of one trigger through its `triggers.dev/` annotations. Pure.

Requests travel as annotations, not spec fields, so that asking never changes the spec
that Git owns (GitOps tools see no drift in the spec, and the operator never writes it)
and so that the admission policy that guards run-now — setting or changing any
`triggers.dev/` annotation needs the right to create Jobs — guards every request alike.
Each request carries its own idempotency key; status records which keys were handled,
so a request is carried out once however often its annotation is seen.

- `triggers.dev/run-now: VALUE` starts one manual run (`jobs.builder`).
- `triggers.dev/backfill: {"id": ID, "from": T1, "to": T2, "maxRuns": N, "concurrency": K}`
  starts the scheduled times in [T1, T2] that have no run (`schedule.backfill`); status
  shows its progress under the same id.
- `triggers.dev/resume: VALUE` ends a suspension after repeated failures
  (`jobs.streak`); status keeps the last value handled.
- `triggers.dev/run-now-payload: {"value": VALUE, "payload": JSON}` gives that run its own
  TRIGGER_PAYLOAD. It names the run-now value it belongs to, so a payload left behind
  from an earlier request is never handed to a later one: a run-now whose value it does
  not name gets the trigger's own payload.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from trigger_operator.models.api import GROUP
from trigger_operator.models.instants import format_instant, parse_instant
from trigger_operator.models.spec import check_payload

ANNOTATION_RUN_NOW_PAYLOAD = f"{GROUP}/run-now-payload"
ANNOTATION_RESUME = f"{GROUP}/resume"
ANNOTATION_BACKFILL = f"{GROUP}/backfill"

BACKFILL_MAX_RUNS = 1000
"""The most times one backfill starts (its remaining times are kept in status)."""
BACKFILL_DEFAULT_MAX_RUNS = 100
BACKFILL_MAX_CONCURRENCY = 10
BACKFILL_MAX_CHARS = 1024
_ID = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.:+]{0,62}")
RUN_NOW_PAYLOAD_MAX_CHARS = 65_536
"""The annotation's bound (the policy's too): the payload's own 32 KiB, escaped, fits."""


class RequestError(ValueError):
    """A request annotation that cannot be carried out; the message names it and says why."""


@dataclass(frozen=True)
class RunNowPayload:
    """The payload a run-now value asked for; `payload` None means JSON null (no payload)."""

    value: str
    payload: JsonValue


def run_now_payload_annotation(value: str, payload: JsonValue) -> str:
    """The annotation text that gives run-now `value` its own `payload` (checked first)."""
    try:
        check_payload(payload)
    except ValueError as error:
        raise RequestError(f"the payload: {error}") from error
    text = json.dumps({"value": value, "payload": payload}, sort_keys=True, separators=(",", ":"))
    if len(text) > RUN_NOW_PAYLOAD_MAX_CHARS:
        raise RequestError(
            f"the payload: {len(text)} characters in the annotation, "
            f"more than {RUN_NOW_PAYLOAD_MAX_CHARS}"
        )
    return text


def run_now_payload(annotations: dict[str, Any], value: str) -> RunNowPayload | None:
    """The payload asked for run-now `value`, or None when none was asked for it.

    Raises RequestError when the annotation names `value` but cannot be used.
    """
    text = annotations.get(ANNOTATION_RUN_NOW_PAYLOAD)
    if not text:
        return None
    where = f"metadata.annotations[{ANNOTATION_RUN_NOW_PAYLOAD}]"
    try:
        document = json.loads(text)
    except ValueError:
        # Unreadable: it may well have been meant for this value. Refuse rather than run
        # with the trigger's own payload.
        raise RequestError(f"{where}: not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), str):
        raise RequestError(f'{where}: not an object {{"value": RUN-NOW VALUE, "payload": JSON}}')
    if document["value"] != value:
        return None
    if len(text) > RUN_NOW_PAYLOAD_MAX_CHARS:
        raise RequestError(f"{where}: more than {RUN_NOW_PAYLOAD_MAX_CHARS} characters")
    payload = document.get("payload")
    try:
        check_payload(payload)
    except ValueError as error:
        raise RequestError(f"{where}: the payload: {error}") from error
    return RunNowPayload(value=value, payload=payload)


@dataclass(frozen=True, kw_only=True)
class BackfillRequest:
    """Start the scheduled times in [start, end] that have no run yet."""

    id: str
    start: datetime
    end: datetime
    max_runs: int = BACKFILL_DEFAULT_MAX_RUNS
    concurrency: int = 1

    def annotation(self) -> str:
        """The annotation text of this request."""
        return json.dumps(
            {
                "id": self.id,
                "from": format_instant(self.start),
                "to": format_instant(self.end),
                "maxRuns": self.max_runs,
                "concurrency": self.concurrency,
            },
            separators=(",", ":"),
        )


def backfill_request(text: str) -> BackfillRequest:
    """Read a backfill annotation; RequestError names what is wrong with it."""
    where = f"metadata.annotations[{ANNOTATION_BACKFILL}]"
    if len(text) > BACKFILL_MAX_CHARS:
        raise RequestError(f"{where}: more than {BACKFILL_MAX_CHARS} characters")
    try:
        document = json.loads(text)
    except ValueError:
        raise RequestError(f"{where}: not JSON") from None
    if not isinstance(document, dict):
        raise RequestError(f'{where}: not an object {{"id": ..., "from": ..., "to": ...}}')
    ident = document.get("id")
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise RequestError(
            f"{where}: id must be 1 to 63 letters, digits and - _ . : +, starting with a "
            "letter or digit"
        )
    try:
        start = parse_instant(str(document.get("from")))
        end = parse_instant(str(document.get("to")))
    except ValueError as error:
        raise RequestError(f"{where}: from and to must be RFC 3339 instants: {error}") from None
    if end < start:
        raise RequestError(f"{where}: to ({format_instant(end)}) is before from")
    max_runs = _bounded(document, "maxRuns", BACKFILL_DEFAULT_MAX_RUNS, BACKFILL_MAX_RUNS, where)
    concurrency = _bounded(document, "concurrency", 1, BACKFILL_MAX_CONCURRENCY, where)
    return BackfillRequest(
        id=ident, start=start, end=end, max_runs=max_runs, concurrency=concurrency
    )


def _bounded(document: dict[str, Any], key: str, default: int, most: int, where: str) -> int:
    value = document.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise RequestError(f"{where}: {key} must be a whole number from 1 to {most}")
    return value
