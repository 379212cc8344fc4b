"""Consecutive failed runs, and suspension after too many of them. Pure.

`spec.failurePolicy.suspendAfterConsecutiveFailures: N` stops a trigger from starting
runs once N runs in a row have failed. The count lives in status (`status.failures`),
advanced from the Jobs: every pass counts the finished Jobs it has not counted yet, in
the order they finished — a failed run adds one, a succeeded run resets the count to 0.
What has been counted is marked by a watermark (the newest finish counted, and the
names of the runs that finished in that same second), so a Job is counted once however
many passes, replicas or leaders see it, and a Job pruned or deleted after it was
counted changes nothing. A Job is counted before it can be pruned: pruning follows the
status patch of the same pass.

Every finished run counts: scheduled, caught up, backfilled and manual. A suspension
lasts until a person acts: a new value of the `triggers.dev/resume` annotation, or any
edit of the spec (a new metadata.generation). Resuming resets the count and is dated,
like an edit, so the times that passed while suspended never fire. A success while
suspended (a manual run) resets the count but does not resume: resuming is a decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.models.status import FailureStreak


@dataclass(frozen=True)
class StreakUpdate:
    """The streak after a pass, and what changed in it."""

    streak: FailureStreak
    suspended_now: bool = False
    """The count reached the limit in this pass: report it once."""
    resumed_now: bool = False
    """A resume (annotation or spec edit) ended a suspension in this pass."""


def update_streak(
    streak: FailureStreak,
    jobs: Iterable[ObservedJob],
    *,
    limit: int | None,
    generation: int,
    resume: str | None,
    now: datetime,
) -> StreakUpdate:
    """Count the runs finished since `streak`, after a resume if one was asked for.

    `limit` is suspendAfterConsecutiveFailures (None: never suspend), `resume` the
    current value of the resume annotation.
    """
    resumed = False
    if resume and resume != streak.resumed:
        # A value is handled once, whether or not it found the trigger suspended.
        resumed = streak.suspended_at is not None
        streak = streak.model_copy(update={"resumed": resume})
    if streak.suspended_at is not None and generation != streak.suspended_generation:
        resumed = True
    if resumed:
        streak = streak.model_copy(
            update={"consecutive": 0, "suspended_at": None, "suspended_generation": None}
        )
    streak = _count(streak, jobs, skip=resumed)
    if (
        limit is not None
        and streak.suspended_at is None
        and not resumed
        and streak.consecutive >= limit
    ):
        streak = streak.model_copy(update={"suspended_at": now, "suspended_generation": generation})
        return StreakUpdate(streak, suspended_now=True)
    return StreakUpdate(streak, resumed_now=resumed)


def _count(streak: FailureStreak, jobs: Iterable[ObservedJob], *, skip: bool) -> FailureStreak:
    """Advance the watermark over new finished runs; `skip`: move it without counting.

    A resume skips: the failures that finished before it are what the person resumed.
    """
    through = streak.counted_through
    seen = set(streak.counted_at_through)
    fresh = sorted(
        (
            job
            for job in jobs
            if job.finished is not None
            and job.result in (RunResult.SUCCEEDED, RunResult.FAILED)
            and (
                through is None
                or job.finished > through
                or (job.finished == through and job.name not in seen)
            )
        ),
        key=lambda job: (job.finished, job.name),
    )
    if not fresh:
        return streak
    consecutive = streak.consecutive
    for job in fresh:
        if not skip:
            consecutive = consecutive + 1 if job.result is RunResult.FAILED else 0
    newest = fresh[-1].finished
    assert newest is not None
    names = [job.name for job in fresh if job.finished == newest]
    if newest == through:
        names = [*streak.counted_at_through, *names]
    return streak.model_copy(
        update={"consecutive": consecutive, "counted_through": newest, "counted_at_through": names}
    )
