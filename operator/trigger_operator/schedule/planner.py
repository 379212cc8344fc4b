"""Missed-time planning: which scheduled times to start now, and which are missed.

`plan(spec, progress, now=..., jitter=...)` is a pure function. The times it considers
lie after the floor (the latest of the cursor and the edit epoch less the jitter, so that
a time whose run falls due after an edit or resume still fires; for a cron trigger that
has neither, its creation) and are due, that is `time + jitter <= now`. Of those:

- catchUp Latest starts the newest; All starts the newest maxCatchUpRuns, oldest first;
  None starts a time only when it is the only one due and it is on time (at most
  CATCH_UP_NONE_GRACE late, the ordinary dispatch delay), so only downtime makes it miss;
- a time more than startingDeadlineSeconds late (counted in whole seconds from
  `time + jitter`) is never started;
- a due time that already has a Job (`existing`: a leader started it and stopped before
  moving the cursor) is a run, neither started again by the plan's count nor missed;
- every other due time not started is missed; all of them are counted in `missed_count`,
  the newest MISSED_DETAIL_LIMIT are listed for the ledger.

Each start comes with its kind: `catch-up` when the plan starts or misses more than one
time (the operator was not dispatching) or the time is more than CATCH_UP_NONE_GRACE
late, else `scheduled`.

Counting does not list: a trigger down for a year on a per-second schedule is counted
with `Schedule.count` (arithmetic per day), and the newest times are found by a search
on counts before only those are listed, so a plan costs O(days of downtime + listed
times), not O(missed times).

Exclusions (calendars, spec.exclude) take a due time out before any of that: an excluded
time is neither started nor missed but `excluded` (the ledger's skipped, reason
Excluded), and the cursor moves past it like past any handled time. The next due time
(`next_due`) is the next scheduled time, excluded or not, so that each excluded time is
handled when it comes; `next_run` and `upcoming` list only times that will run. Of a
backlog longer than the listed times (keep + MISSED_DETAIL_LIMIT), the older ones are
counted without being looked at: there an excluded time counts as missed.

A one-time trigger ignores catchUp: its runAt, past or not, is started once it is due,
unless it is past startingDeadlineSeconds or lies at or before the edit epoch (then it
is missed); either way the trigger is then completed. A suspended trigger plans nothing.
Concurrency (Forbid, Replace) is not the planner's: it depends on the active Jobs.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import islice, takewhile

from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import CatchUp, TriggerSpec
from trigger_operator.schedule.calendars import NO_EXCLUSIONS, ExclusionSet, allowed_times
from trigger_operator.schedule.progress import Progress
from trigger_operator.schedule.times import (
    OneTimeSchedule,
    RecurringSchedule,
    Schedule,
    next_after,
    schedule_of,
)

CATCH_UP_NONE_GRACE = timedelta(seconds=60)
MISSED_DETAIL_LIMIT = 1000
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class PlannedRun:
    """One scheduled time to start now, and how it came to be due."""

    scheduled_for: datetime
    kind: RunKind


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to do for one trigger at one instant."""

    starts: tuple[PlannedRun, ...] = ()
    """Scheduled times to start now, oldest first, each with its kind."""
    missed: tuple[datetime, ...] = ()
    """The newest missed times (at most MISSED_DETAIL_LIMIT), oldest first."""
    missed_count: int = 0
    """Every missed time, listed or not."""
    excluded: tuple[tuple[datetime, str], ...] = ()
    """Due times a calendar excludes, oldest first, each with the calendar that does."""
    cursor: datetime | None = None
    """The newest scheduled time handled once this plan is carried out."""
    completed: bool = False
    """A one-time trigger has nothing left to run."""
    next_run: datetime | None = None
    """The next scheduled time after this plan; None when nothing is scheduled."""
    next_due: datetime | None = None
    """When the next run is due: next_run plus the jitter."""
    upcoming: tuple[datetime, ...] = ()
    """The next few scheduled times, next_run first."""

    @property
    def start(self) -> tuple[datetime, ...]:
        """The scheduled times to start now, oldest first."""
        return tuple(run.scheduled_for for run in self.starts)

    @property
    def last_missed(self) -> datetime | None:
        """The newest missed time, if any."""
        return self.missed[-1] if self.missed else None


def plan(
    spec: TriggerSpec,
    progress: Progress,
    *,
    now: datetime,
    jitter: timedelta = timedelta(0),
    upcoming_count: int = 1,
    existing: Collection[datetime] = (),
    hash_key: str | None = None,
    exclusions: ExclusionSet = NO_EXCLUSIONS,
) -> Plan:
    """Plan the trigger at `now`; raise a ScheduleError when its schedule is invalid.

    `existing` are the scheduled times that already have a Job; `hash_key` (the
    trigger's uid) is what `H` in its cron fields hashes; `exclusions` are the times its
    calendars keep from running.
    """
    schedule = schedule_of(spec, hash_key=hash_key)
    if spec.suspend:
        return Plan(cursor=progress.cursor, completed=progress.completed)
    if isinstance(schedule, OneTimeSchedule):
        once = _plan_once(schedule, spec, progress, now=now, jitter=jitter, count=upcoming_count)
        if once.missed and schedule.run_at in existing:
            return Plan(cursor=once.cursor, completed=True)
        return once
    return _plan_cron(
        schedule,
        spec,
        progress,
        now=now,
        jitter=jitter,
        count=upcoming_count,
        existing=frozenset(existing),
        exclusions=exclusions,
    )


# The next allowed times of a schedule as last listed, by the schedule's identity (the
# entry holds the schedule, so the identity is not reused): (schedule, exclusions, count,
# the instant listed after, the times). Compiled schedules are shared by every trigger
# with the same expression and zone, and a new leader plans all of them within seconds.
_FOLLOWING: dict[int, tuple[Schedule, ExclusionSet, int, datetime, tuple[datetime, ...]]] = {}
_FOLLOWING_LIMIT = 1024


def _following(
    schedule: RecurringSchedule, exclusions: ExclusionSet, after: datetime, count: int
) -> list[datetime]:
    """The first `count` allowed times after `after` (`allowed_times`).

    A listing made after an earlier instant serves any instant before its first time:
    no allowed time lies between the two, so the times after either are the same.
    """
    held = _FOLLOWING.get(id(schedule))
    if (
        held is not None
        and held[0] is schedule
        and held[2] == count
        and held[3] <= after < held[4][0]
        and (held[1] is exclusions or held[1] == exclusions)
    ):
        return list(held[4])
    times = tuple(islice(allowed_times(schedule, exclusions, after), count))
    if len(times) == count:  # fewer: the schedule or the search ended; not kept
        if len(_FOLLOWING) >= _FOLLOWING_LIMIT:
            _FOLLOWING.clear()
        _FOLLOWING[id(schedule)] = (schedule, exclusions, count, after, times)
    return list(times)


def latest_times(schedule: Schedule, after: datetime, until: datetime, n: int) -> list[datetime]:
    """The newest `n` fire times in (after, until], oldest first, without listing the rest."""
    if n <= 0:
        return []
    if schedule.count(after, until) > n:
        after = _start_of_newest(schedule, after, until, n)
    return list(takewhile(lambda t: t <= until, schedule.fire_times(after)))[-n:]


def _plan_cron(
    schedule: RecurringSchedule,
    spec: TriggerSpec,
    progress: Progress,
    *,
    now: datetime,
    jitter: timedelta,
    count: int,
    existing: frozenset[datetime],
    exclusions: ExclusionSet,
) -> Plan:
    # A time whose run falls due after the epoch (its time plus the jitter) still fires:
    # a resume between a time and its jittered dispatch does not drop it.
    epoch = progress.epoch - jitter if progress.epoch is not None else None
    floor = max((t for t in (progress.cursor, epoch) if t is not None), default=progress.created)
    due_until = now - jitter
    keep = spec.max_catch_up_runs if spec.catch_up is CatchUp.ALL else 1
    started: list[datetime] = []
    missed: list[datetime] = []
    excluded: list[tuple[datetime, str]] = []
    missed_count = 0
    cursor = progress.cursor
    total = schedule.count(floor, due_until)
    if total:
        recent = latest_times(schedule, floor, due_until, keep + MISSED_DETAIL_LIMIT)
        excluded = _excluded(recent, exclusions, existing)
        left_out = {t for t, _ in excluded}
        eligible = [t for t in recent if t not in left_out]
        started = [t for t in eligible[-keep:] if _may_start(t, spec, now=now, jitter=jitter)]
        if spec.catch_up is CatchUp.NONE and total - len(excluded) > 1:
            # More than one time due at once means the operator was not dispatching
            # (downtime, a long hand-over): None starts none of them.
            started = []
        ran = {t for t in eligible if t in existing and t not in started}
        missed = [t for t in eligible if t not in started and t not in ran][-MISSED_DETAIL_LIMIT:]
        missed_count = total - len(excluded) - len(started) - len(ran)
        cursor = recent[-1]
    after = max(floor, due_until)
    following = _following(schedule, exclusions, after, max(count, 1))
    outcome = _with_next(
        Plan(
            starts=_runs(started, missed_count, now=now, jitter=jitter),
            missed=tuple(missed),
            missed_count=missed_count,
            excluded=tuple(excluded),
            cursor=cursor,
        ),
        following,
        jitter=jitter,
        count=count,
    )
    if exclusions.calendars:
        # Wake for the next scheduled time even when it is excluded: it is handled (and
        # recorded) when it comes, and the cursor moves past it.
        upcoming_any = next_after(schedule, after)
        outcome = replace(outcome, next_due=upcoming_any + jitter if upcoming_any else None)
    return outcome


def _excluded(
    recent: list[datetime], exclusions: ExclusionSet, existing: frozenset[datetime]
) -> list[tuple[datetime, str]]:
    """The due times a calendar excludes; a time that already has a Job ran (a calendar
    edited after its Job was created does not take it back)."""
    if not exclusions.calendars:
        return []
    found: list[tuple[datetime, str]] = []
    for instant in recent:
        source = exclusions.excluded_by(instant)
        if source is not None and instant not in existing:
            found.append((instant, source))
    return found


def _plan_once(
    schedule: OneTimeSchedule,
    spec: TriggerSpec,
    progress: Progress,
    *,
    now: datetime,
    jitter: timedelta,
    count: int,
) -> Plan:
    run_at = schedule.run_at
    if progress.completed or (progress.cursor is not None and run_at <= progress.cursor):
        return Plan(cursor=progress.cursor, completed=True)
    if progress.epoch is not None and run_at + jitter <= progress.epoch:
        return Plan(missed=(run_at,), missed_count=1, cursor=run_at, completed=True)
    if run_at + jitter > now:
        return _with_next(Plan(cursor=progress.cursor), [run_at], jitter=jitter, count=count)
    if not _may_start(run_at, spec, now=now, jitter=jitter, one_time=True):
        return Plan(missed=(run_at,), missed_count=1, cursor=run_at, completed=True)
    return Plan(starts=_runs([run_at], 0, now=now, jitter=jitter), cursor=run_at, completed=True)


def _may_start(
    scheduled_for: datetime,
    spec: TriggerSpec,
    *,
    now: datetime,
    jitter: timedelta,
    one_time: bool = False,
) -> bool:
    # Whole seconds, so that a deadline of 0 still admits a dispatch within the second.
    late = timedelta(seconds=int((now - (scheduled_for + jitter)).total_seconds()))
    deadline = spec.starting_deadline_seconds
    if deadline is not None and late > timedelta(seconds=deadline):
        return False
    return one_time or spec.catch_up is not CatchUp.NONE or late <= CATCH_UP_NONE_GRACE


def _with_next(plan: Plan, following: list[datetime], *, jitter: timedelta, count: int) -> Plan:
    if not following:
        return plan
    return replace(
        plan,
        next_run=following[0],
        next_due=following[0] + jitter,
        upcoming=tuple(following[: max(count, 0)]),
    )


def _runs(
    start: list[datetime], missed_count: int, *, now: datetime, jitter: timedelta
) -> tuple[PlannedRun, ...]:
    # Several times due in one pass means the operator was not dispatching: what it
    # starts now is catch-up, as is anything later than an ordinary dispatch delay.
    backlog = len(start) + missed_count > 1

    def kind(scheduled_for: datetime) -> RunKind:
        late = now - (scheduled_for + jitter)
        return RunKind.CATCH_UP if backlog or late > CATCH_UP_NONE_GRACE else RunKind.SCHEDULED

    return tuple(PlannedRun(t, kind(t)) for t in start)


def _start_of_newest(schedule: Schedule, after: datetime, until: datetime, n: int) -> datetime:
    """An instant with exactly `n` fire times between it and `until`.

    Widen a window back from `until` by doubling until it holds `n`, then halve the
    difference to a second. Fire times are whole seconds, so a window of one second holds
    at most one and the search lands on exactly `n`.
    """
    near, width = until, _SECOND
    while True:
        far = until - width
        if far <= after:
            far = after
            break
        if schedule.count(far, until) >= n:
            break
        near, width = far, width * 2
    while near - far > _SECOND:
        middle = far + (near - far) / 2
        if schedule.count(middle, until) >= n:
            far = middle
        else:
            near = middle
    return far
