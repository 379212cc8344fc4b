"""Which scheduled times of a range a backfill starts, and which it leaves. Pure.

A backfill repairs history: it starts the trigger's scheduled times in [start, end] that
have no run. What is known of a time comes from the ledger and the trigger's Jobs
(`known`), and decides:

- a time that ran — a Job exists, or the ledger has it pending, running, succeeded,
  failed or cancelled — is left: `AlreadyRan`;
- a time skipped on purpose (`concurrencyPolicy: Forbid`, or a Queue's superseded time:
  ledger `skipped`) is left: `Skipped`; it was a decision, not a loss;
- a `missed` time, or a time the ledger has no row for, is started;
- beyond the first `max_runs` times to start (oldest first), the rest are left:
  `MaxRuns`.

Times after `now` are not in the range: they are the scheduler's. Times a calendar
excludes are not fire times of the schedule, so they are never in the range. A range
holding more than RANGE_LIMIT fire times is refused (narrow it): a backfill is a repair,
and listing a year of a per-second schedule would be a mistake, not a repair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import takewhile

from trigger_operator.schedule.times import Schedule

RANGE_LIMIT = 10_000
_TICK = timedelta(microseconds=1)


class Known(StrEnum):
    """What is known of a scheduled time before a backfill."""

    RAN = "ran"
    SKIPPED = "skipped"
    MISSED = "missed"


class LeftReason(StrEnum):
    """Why a backfill leaves a time as it is."""

    ALREADY_RAN = "AlreadyRan"
    SKIPPED = "Skipped"
    EXCLUDED = "Excluded"
    MAX_RUNS = "MaxRuns"


class BackfillTooLarge(ValueError):
    """The range holds more fire times than a backfill lists."""


@dataclass(frozen=True)
class BackfillPlan:
    """The times to start, oldest first, and the times left with their reasons."""

    start: tuple[datetime, ...] = ()
    left: tuple[tuple[datetime, LeftReason], ...] = ()
    left_by_reason: Mapping[str, int] = field(default_factory=dict)


def plan_backfill(
    schedule: Schedule,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    known: Mapping[datetime, Known],
    max_runs: int,
    excluded_by: Callable[[datetime], str | None] | None = None,
) -> BackfillPlan:
    """Plan a backfill of [start, end] (inclusive) at `now`.

    `excluded_by` names the calendar (or `spec.exclude`) that excludes a time, as the
    trigger's exclusions are now: an excluded time is never run, by a backfill either.
    """
    until = min(end, now)
    if until < start:
        return BackfillPlan()
    total = schedule.count(start - _TICK, until)
    if total > RANGE_LIMIT:
        raise BackfillTooLarge(
            f"the range holds {total} scheduled times, more than {RANGE_LIMIT}: narrow it"
        )
    times = list(takewhile(lambda t: t <= until, schedule.fire_times(start - _TICK)))
    starts: list[datetime] = []
    left: list[tuple[datetime, LeftReason]] = []
    for moment in times:
        seen = known.get(moment)
        if seen is Known.RAN:
            left.append((moment, LeftReason.ALREADY_RAN))
        elif seen is Known.SKIPPED:
            left.append((moment, LeftReason.SKIPPED))
        elif excluded_by is not None and excluded_by(moment) is not None:
            left.append((moment, LeftReason.EXCLUDED))
        elif len(starts) >= max_runs:
            left.append((moment, LeftReason.MAX_RUNS))
        else:
            starts.append(moment)
    counts = Counter(reason.value for _, reason in left)
    return BackfillPlan(start=tuple(starts), left=tuple(left), left_by_reason=dict(counts))
