"""What people ask of one trigger through its `triggers.dev/` annotations. Pure.

Requests travel as annotations, not spec fields, so that asking never changes the spec
that Git owns (GitOps tools see no drift in the spec, and the operator never writes it)
and so that the admission policy that guards run-now — setting or changing any
`triggers.dev/` annotation needs the right to create Jobs — guards every request alike.
Each request carries its own idempotency key; status records which keys were handled,
so a request is carried out once however often its annotation is seen.

- `triggers.dev/run-now: VALUE` starts one manual run (`jobs.builder`).
- `triggers.dev/resume: VALUE` ends a suspension after repeated failures
  (`jobs.streak`); status keeps the last value handled.
- `triggers.dev/run-now-payload: {"value": VALUE, "payload": JSON}` gives that run its own
  TRIGGER_PAYLOAD. It names the run-now value it belongs to, so a payload left behind
  from an earlier request is never handed to a later one: a run-now whose value it does
  not name gets the trigger's own payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from trigger_operator.models.api import GROUP
from trigger_operator.models.spec import check_payload

ANNOTATION_RUN_NOW_PAYLOAD = f"{GROUP}/run-now-payload"
ANNOTATION_RESUME = f"{GROUP}/resume"
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
