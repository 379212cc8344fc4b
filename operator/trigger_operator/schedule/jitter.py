"""Stable jitter: a per-trigger delay in [0, jitterSeconds), the same on every replica.

It is derived from the trigger's uid with SHA-256 (not Python's `hash()`, which is
salted per process), so every leader computes the same delay for the same trigger and a
trigger keeps its slot across restarts. It is added after the schedule has been resolved
to an instant (daylight-saving rules included): the scheduled time a run is named and
recorded by stays the cron time, the Job is created `jitter` later.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta


def jitter_for(uid: str, jitter_seconds: int) -> timedelta:
    """The trigger's delay: whole seconds in [0, jitter_seconds); zero when that is 0."""
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(uid.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % jitter_seconds)


def due_at(scheduled_for: datetime, jitter: timedelta) -> datetime:
    """When the run for `scheduled_for` should be started."""
    return scheduled_for + jitter
