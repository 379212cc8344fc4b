"""concurrencyPolicy Queue (Temporal's BufferOne): hold one due time while a run is active.

A time that falls due while a run of the trigger is active is held in `status.queued`
instead of skipped (Forbid) or replacing the run (Replace). At most one time is held: a
newer due time replaces the held one, which is then recorded `skipped` with reason
`Superseded` — the newest time is what a buffer of one keeps, as Temporal does. The held
time starts, under its own scheduled time's Job name and kind, on the first pass that
finds no run active (the pass that a finishing Job's event brings).

The hold is in status, so a new leader starts what its predecessor held; the Job's name
is the held time's, so a pass that starts it twice (a status patch that failed) meets
AlreadyExists. The cursor has moved past the held time when it was held: the scheduler
never plans it again, and its `startingDeadlineSeconds` is not applied once it is held
(it was on time when it fell due; waiting is what Queue asks for). A superseded time is
named in the status patch that supersedes it (`status.notStarted`), as Forbid's skipped
times are, so its ledger row survives a crash that loses the queued record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from trigger_operator.models.runs import RunKind
from trigger_operator.models.status import QueuedRun, TriggerStatus

SUPERSEDED_REASON = "Superseded"


@dataclass(frozen=True)
class Held:
    """The status holding a new time, and the time it replaced (to record), if any."""

    status: TriggerStatus
    superseded: QueuedRun | None


def hold(status: TriggerStatus, scheduled_for: datetime, kind: RunKind, *, now: datetime) -> Held:
    """Hold `scheduled_for`; an older held time is superseded (a newer one is kept)."""
    current = status.queued
    if current is not None and current.scheduled_for >= scheduled_for:
        return Held(status, None)
    queued = QueuedRun(scheduled_for=scheduled_for, kind=kind.value, held_at=now)
    return Held(status.model_copy(update={"queued": queued}), current)


def queued_kind(queued: QueuedRun) -> RunKind:
    """The kind the held time starts with."""
    try:
        return RunKind(queued.kind)
    except ValueError:
        return RunKind.SCHEDULED
