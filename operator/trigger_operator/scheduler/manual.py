"""Runs a person asked for: a run-now value, with the trigger's payload or one of its own.

A new value of `triggers.dev/run-now` starts one manual run, also while the trigger is
suspended and whatever concurrencyPolicy says: it is an explicit request, as
`kubectl create job --from=cronjob/...` is. Its Job is named from the value, so the
same value never starts a second run; status remembers the values handled.

The run's TRIGGER_PAYLOAD is the trigger's own, unless `triggers.dev/run-now-payload`
names this value (`models.requests`). A payload annotation that names the value but
cannot be used (not JSON, beyond the payload bounds) starts nothing: the value is
remembered as refused, with the reason, and one Warning Event `InvalidRunNowPayload`
says why. Running it with the trigger's own payload instead would do what nobody asked.
"""

from __future__ import annotations

import logging
from datetime import datetime

from trigger_operator.jobs.builder import ANNOTATION_RUN_NOW
from trigger_operator.jobs.state import ObservedJob
from trigger_operator.models.requests import RequestError, run_now_payload
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import TriggerStatus
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.publish import StatusPublisher
from trigger_operator.scheduler.recorder import ref_context
from trigger_operator.scheduler.runs import UNSET, RunDispatcher

log = logging.getLogger(__name__)

INVALID_RUN_NOW_PAYLOAD = "InvalidRunNowPayload"


class ManualRuns:
    """Starts the run of a new run-now value."""

    def __init__(self, *, runs: RunDispatcher, publisher: StatusPublisher) -> None:
        self.runs = runs
        self.publisher = publisher

    async def run_now(
        self,
        entry: TriggerEntry,
        spec: TriggerSpec,
        status: TriggerStatus,
        jobs: dict[str, ObservedJob],
        *,
        now: datetime,
    ) -> TriggerStatus:
        """Start the run of a value status has not seen handled; the status to write."""
        annotations = entry.body["metadata"].get("annotations") or {}
        value = annotations.get(ANNOTATION_RUN_NOW)
        if not value or status.handled_run_now(value):
            return status
        try:
            asked = run_now_payload(annotations, value)
        except RequestError as error:
            message = f"run-now {value} not started: {error}"
            log.warning("run-now refused", extra={**ref_context(entry.ref), "error": message})
            await self.publisher.warn(
                entry, reason=INVALID_RUN_NOW_PAYLOAD, message=message, now=now
            )
            return status.with_run_now(value, handled_at=now, refused=str(error))
        job = await self.runs.start(
            entry.ref,
            spec,
            now,
            RunKind.MANUAL,
            due=None,
            run_now=value,
            payload=UNSET if asked is None else asked.payload,
        )
        jobs[job.name] = job
        entry.jobs.setdefault(job.name, job)  # known before its watch event (no second pass)
        return status.with_run_now(value, handled_at=now)
