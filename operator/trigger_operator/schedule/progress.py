"""Where a trigger's schedule stands: what has been handled, and since when it counts.

`Progress` is the scheduler's view of a trigger's bookkeeping in status (cursor,
scheduleHash, specEpoch, completed). `progress_from_status` notices edits: when the
fingerprint of what decides the times (schedule, schedules, runAt, timeZone,
daylightSaving, suspend, and what its calendars and spec.exclude say) differs from the
one in status, the edit is dated `now` (when the operator notices it) and becomes the
epoch, so times before it never fire, and a completed one-time trigger becomes pending
again. Suspending and resuming are edits
too, which is how a resume never fires the times that passed while suspended.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import TriggerStatus


@dataclass(frozen=True, kw_only=True)
class Progress:
    """A trigger's schedule bookkeeping, as the planner reads it."""

    created: datetime
    """metadata.creationTimestamp: a cron trigger never fires a time before it."""
    cursor: datetime | None = None
    """The most recent scheduled time handled (started, missed or skipped)."""
    epoch: datetime | None = None
    """When the last edit (or resume) was noticed; times at or before it never fire.
    None when there has been none since the trigger was first seen."""
    completed: bool = False
    """A one-time trigger's runAt has been handled."""
    fingerprint: str | None = None
    """schedule_fingerprint of the spec this progress belongs to."""


# What `json.dumps(..., sort_keys=True, separators=(",", ":"))` writes, without building
# an encoder on every call (a pass computes a fingerprint each time).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def schedule_fingerprint(spec: TriggerSpec, *, exclusions: str | None = None) -> str:
    """A short stable digest of the fields whose change is an edit of the schedule.

    `exclusions` is the digest of what the trigger's calendars and spec.exclude say
    (`ExclusionSet.digest`): editing a calendar is an edit of every trigger that uses it.
    """
    material: dict[str, object] = {
        "schedule": spec.schedule,
        "runAt": spec.run_at,
        "timeZone": spec.time_zone,
        "daylightSaving": spec.daylight_saving.model_dump(mode="json"),
        "suspend": spec.suspend,
    }
    # Added only when set, so that the fingerprint of a trigger that does not use them
    # stays what earlier versions wrote (an upgrade is not an edit).
    if spec.schedules is not None:
        material["schedules"] = list(spec.schedules)
    if spec.calendars or spec.exclude is not None:
        material["exclusions"] = exclusions
    encoded = _CANONICAL.encode(material).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def progress_from_status(
    spec: TriggerSpec,
    status: TriggerStatus,
    *,
    created: datetime,
    now: datetime,
    noticed: datetime | None = None,
    exclusions: str | None = None,
) -> Progress:
    """The progress to plan with: status as it is, or reset by an edit.

    The edit is dated `noticed` (when a pass first saw it, kept by the scheduler while
    status could not yet record it), else `now`. A status without a fingerprint is not an
    edit when the trigger is seen for the first time: a new cron trigger starts from its
    creation, a new one-time trigger whose runAt has passed still fires (within
    startingDeadlineSeconds). It is one when status was written before (the trigger has
    been invalid since it was created): the fix is dated like any edit, so it never
    fires the times that passed while the trigger could not run.
    """
    fingerprint = schedule_fingerprint(spec, exclusions=exclusions)
    first_sight = status.schedule_hash is None and status.observed_generation is None
    if first_sight or status.schedule_hash == fingerprint:
        return Progress(
            created=created,
            cursor=status.cursor,
            epoch=status.spec_epoch,
            completed=status.completed,
            fingerprint=fingerprint,
        )
    return Progress(
        created=created,
        cursor=status.cursor,
        epoch=noticed or now,
        completed=False,
        fingerprint=fingerprint,
    )
