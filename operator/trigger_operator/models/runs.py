"""The words for a run that the Jobs, the scheduler and the ledger share."""

from __future__ import annotations

from enum import StrEnum


class RunKind(StrEnum):
    """How a run came to be: on time, caught up after downtime, or asked for (run-now)."""

    SCHEDULED = "scheduled"
    CATCH_UP = "catch-up"
    MANUAL = "manual"
