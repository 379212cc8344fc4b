"""Counting consecutive failed runs, suspending after N, resuming (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.jobs.streak import StreakUpdate, update_streak
from trigger_operator.models.runs import RunKind
from trigger_operator.models.status import FailureStreak

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def run(name: str, result: RunResult, finished_after: int | None) -> ObservedJob:
    return ObservedJob(
        name=name,
        uid=f"uid-{name}",
        namespace="team-a",
        trigger_name="nightly",
        trigger_uid="t",
        scheduled_for=T0,
        result=result,
        kind=RunKind.SCHEDULED,
        run_now=None,
        created=T0,
        started=T0,
        finished=None if finished_after is None else T0 + timedelta(seconds=finished_after),
        failed_pods=0,
        deleting=False,
    )


def fail(name: str, at: int) -> ObservedJob:
    return run(name, RunResult.FAILED, at)


def ok(name: str, at: int) -> ObservedJob:
    return run(name, RunResult.SUCCEEDED, at)


def count(
    streak: FailureStreak,
    *jobs: ObservedJob,
    limit: int | None = 3,
    generation: int = 1,
    resume: str | None = None,
    now: datetime = T0,
) -> StreakUpdate:
    return update_streak(streak, jobs, limit=limit, generation=generation, resume=resume, now=now)


def test_failures_count_in_the_order_they_finished_and_a_success_resets() -> None:
    update = count(FailureStreak(), fail("a", 1), ok("b", 2), fail("c", 3), fail("d", 4))

    assert update.streak.consecutive == 2
    assert update.streak.counted_through == T0 + timedelta(seconds=4)
    assert not update.suspended_now


def test_a_job_is_counted_once_however_often_a_pass_sees_it() -> None:
    first = count(FailureStreak(), fail("a", 1), fail("b", 1)).streak
    again = count(first, fail("a", 1), fail("b", 1), run("c", RunResult.RUNNING, None)).streak
    # A run finishing in the same second as the last counted one still counts, once.
    later = count(again, fail("a", 1), fail("b", 1), fail("a2", 1)).streak

    assert (first.consecutive, again.consecutive, later.consecutive) == (2, 2, 3)
    assert sorted(later.counted_at_through) == ["a", "a2", "b"]


def test_the_nth_failure_suspends_once_and_the_suspension_stays() -> None:
    update = count(FailureStreak(), fail("a", 1), fail("b", 2), fail("c", 3), now=T0)
    again = count(update.streak, fail("a", 1), fail("b", 2), fail("c", 3))

    assert update.suspended_now and update.streak.suspended_at == T0
    assert update.streak.suspended_generation == 1
    assert not again.suspended_now and again.streak.suspended_at == T0


def test_a_success_while_suspended_resets_the_count_but_does_not_resume() -> None:
    suspended = count(FailureStreak(), fail("a", 1), fail("b", 2), fail("c", 3)).streak

    after = count(suspended, ok("manual", 9)).streak

    assert after.consecutive == 0 and after.suspended_at is not None


def test_a_new_resume_value_resumes_and_resets_without_counting_what_came_before() -> None:
    suspended = count(FailureStreak(), fail("a", 1), fail("b", 2), fail("c", 3)).streak

    update = count(suspended, fail("late", 5), resume="r1")
    same_value = count(update.streak, fail("late", 5), fail("x", 6), resume="r1")

    assert update.resumed_now and update.streak.suspended_at is None
    assert update.streak.consecutive == 0 and update.streak.resumed == "r1"
    assert not same_value.resumed_now and same_value.streak.consecutive == 1


def test_a_resume_value_that_finds_nothing_suspended_is_only_remembered() -> None:
    update = count(FailureStreak(consecutive=1), fail("a", 1), resume="early")

    assert not update.resumed_now
    assert (update.streak.consecutive, update.streak.resumed) == (2, "early")


def test_any_spec_edit_resumes() -> None:
    suspended = count(FailureStreak(), fail("a", 1), fail("b", 2), fail("c", 3)).streak

    update = count(suspended, generation=2)

    assert update.resumed_now and update.streak.suspended_at is None


def test_without_a_limit_nothing_suspends() -> None:
    update = count(FailureStreak(), *(fail(str(i), i) for i in range(10)), limit=None)

    assert update.streak.consecutive == 10 and update.streak.suspended_at is None
