"""The words for a run that the Jobs, the scheduler and the ledger share."""

from __future__ import annotations

from enum import StrEnum


class RunKind(StrEnum):
    """How a run came to be: on time, caught up after downtime, asked for (run-now), or
    started by a backfill of a range (under its scheduled time's name and key)."""

    SCHEDULED = "scheduled"
    CATCH_UP = "catch-up"
    MANUAL = "manual"
    BACKFILL = "backfill"
