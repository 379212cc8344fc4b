"""The Lease elector's decisions, driven step by step on a fake clock.

`FakeLeases` stands in for the gateway's three Lease methods, with the API server's
optimistic concurrency: every write bumps a numeric resourceVersion, and a replace that
carries a stale one fails with `Conflict`. The real API is exercised by the
integration tests; here time and interleavings are chosen by the test.

Timings used throughout: lease duration 6 s (safety margin 1.2 s, so a leader's write
deadline is 4.8 s after its renew started), renew every 2 s, retry every 1 s.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from trigger_operator.clock import FakeClock
from trigger_operator.jobs.builder import LeaderIdentity
from trigger_operator.kube.gateway import (
    AlreadyExists,
    ApiUnavailable,
    Conflict,
    Forbidden,
    NotFound,
)
from trigger_operator.leadership.elector import (
    UNUSABLE_AFTER,
    LeaseElector,
    LeaseSettings,
    LeaseUnusable,
    holder_of,
)

NAMESPACE = "ops"
NAME = "trigger-operator-leader"
DURATION, RENEW, RETRY = 6.0, 2.0, 1.0
DEADLINE_AFTER_RENEW = 4.8


class FakeLeases:
    """Leases in memory, with resourceVersion conflict semantics."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 100
        self.fail_with: Exception | None = None
        self.after_read: Callable[[], Awaitable[None]] | None = None

    def _bump(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        stored["spec"] = {k: v for k, v in stored["spec"].items() if v is not None}
        self.stored[(stored["metadata"]["namespace"], stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)  # let concurrent callers interleave, as real calls do
        self._maybe_fail()
        found = self.stored.get((namespace, name))
        answer = copy.deepcopy(found) if found is not None else None
        if self.after_read is not None:
            # Something happens while the answer is on its way back.
            hook, self.after_read = self.after_read, None
            await hook()
        return answer

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        self._maybe_fail()
        if (namespace, body["metadata"]["name"]) in self.stored:
            raise AlreadyExists("leases exists", status=409, reason="AlreadyExists")
        return self._bump({**body, "metadata": {**body["metadata"], "namespace": namespace}})

    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        await asyncio.sleep(0)
        self._maybe_fail()
        current = self.stored.get((namespace, name))
        if current is None:
            raise NotFound("no lease", status=404)
        given = body["metadata"].get("resourceVersion")
        if given is not None and given != current["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified", status=409, reason="Conflict")
        return self._bump(body)

    def lease(self) -> dict[str, Any]:
        return copy.deepcopy(self.stored[(NAMESPACE, NAME)])

    def holder(self) -> str | None:
        found = holder_of(self.stored.get((NAMESPACE, NAME)))
        return found.identity if found else None

    def force_holder(self, identity: str, revision: int) -> dict[str, Any]:
        """Another replica writes the Lease (as seen by nobody under test)."""
        lease = self.lease()
        lease["spec"]["holderIdentity"] = identity
        lease["metadata"]["annotations"]["triggers.dev/revision"] = str(revision)
        return self._bump(lease)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))


@pytest.fixture
def leases() -> FakeLeases:
    return FakeLeases()


Replica = Callable[..., LeaseElector]


@pytest.fixture
def replica(clock: FakeClock, leases: FakeLeases) -> Replica:
    def make(
        identity: str, revision: int = 1, events: list[tuple[str, str | None]] | None = None
    ) -> LeaseElector:
        return LeaseElector(
            leases,
            lease=LeaseSettings(
                namespace=NAMESPACE,
                name=NAME,
                duration=DURATION,
                renew_interval=RENEW,
                retry_period=RETRY,
            ),
            writer=LeaderIdentity(identity=identity, revision=revision),
            clock=clock,
            on_change=(lambda event, other: events.append((event, other)))
            if events is not None
            else None,
        )

    return make


async def _renew_for(seconds: float, clock: FakeClock, leader: LeaseElector, *others: Any) -> None:
    """Advance time in renew intervals; the leader renews and the others try each time."""
    elapsed = 0.0
    while elapsed < seconds:
        clock.advance(RENEW)
        elapsed += RENEW
        await leader.step()
        for other in others:
            await other.step()
            assert not other.may_write(), f"{other.writer.identity} took a renewed lease"


# -- taking the Lease -----------------------------------------------------------------------


async def test_a_missing_lease_is_created_and_the_creator_leads(
    replica: Replica, leases: FakeLeases
) -> None:
    events: list[tuple[str, str | None]] = []
    a = replica("a", revision=4, events=events)

    await a.step()

    assert a.may_write()
    lease = leases.lease()
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 6
    assert lease["metadata"]["annotations"]["triggers.dev/revision"] == "4"
    assert events == [("acquired", None)]
    assert a.changed().is_set()


async def test_a_released_lease_is_taken_at_once(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    a, b = replica("a"), replica("b")
    await a.step()
    await b.step()
    assert not b.may_write()

    await a.release()
    await b.step()

    assert b.may_write()
    assert leases.holder() == "b"


async def test_a_renewed_lease_of_the_same_revision_is_never_taken(
    replica: Replica, clock: FakeClock
) -> None:
    a, b = replica("a", revision=2), replica("b", revision=2)
    await a.step()

    await _renew_for(5 * DURATION, clock, a, b)

    assert a.may_write()


async def test_an_unrenewed_lease_is_taken_only_after_its_duration(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    a, b = replica("a"), replica("b")
    await a.step()
    await b.step()  # b sees the record now; expiry counts from here

    clock.advance(DURATION)  # a is gone: no renew
    await b.step()
    assert not b.may_write(), "taken at exactly the duration, not after it"

    clock.advance(0.1)
    await b.step()
    assert b.may_write()
    assert leases.holder() == "b"
    assert leases.lease()["spec"]["leaseTransitions"] == 1


async def test_expiry_is_counted_from_when_the_standby_saw_the_last_change(
    replica: Replica, clock: FakeClock
) -> None:
    # Not from the holder's renewTime: another machine's wall clock is never trusted.
    a, b = replica("a"), replica("b")
    await a.step()
    clock.advance(5.0)
    await b.step()  # first sight of the record, 5 s after it was written

    clock.advance(DURATION - 0.5)
    await b.step()
    assert not b.may_write()
    clock.advance(0.6)
    await b.step()
    assert b.may_write()


async def test_a_standby_wakes_when_the_lease_it_watches_would_expire(
    replica: Replica, clock: FakeClock
) -> None:
    a, b = replica("a"), replica("b")
    await a.step()
    assert await b.step() == pytest.approx(RETRY)
    clock.advance(5.5)
    assert await b.step() == pytest.approx(0.55)


async def test_two_standbys_racing_for_a_free_lease_have_one_winner(
    replica: Replica, leases: FakeLeases
) -> None:
    a, b, c = replica("a"), replica("b"), replica("c")

    await asyncio.gather(a.step(), b.step(), c.step())

    leaders = [r.writer.identity for r in (a, b, c) if r.may_write()]
    assert leaders == [leases.holder()]


async def test_a_restarted_replica_reclaims_the_lease_that_names_it(
    replica: Replica, leases: FakeLeases
) -> None:
    await replica("a").step()

    again = replica("a")
    await again.step()

    assert again.may_write()
    assert leases.lease()["spec"]["leaseTransitions"] == 0


# -- revisions --------------------------------------------------------------------------------


async def test_a_lower_revision_is_superseded_at_once(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    old_events: list[tuple[str, str | None]] = []
    new_events: list[tuple[str, str | None]] = []
    old = replica("old", revision=1, events=old_events)
    new = replica("new", revision=2, events=new_events)
    await old.step()
    clock.advance(0.5)  # freshly renewed, far from expiry

    await new.step()

    assert new.may_write()
    assert leases.holder() == "new"
    assert leases.lease()["metadata"]["annotations"]["triggers.dev/revision"] == "2"
    assert new_events == [("acquired", "old")]
    # The old leader learns it from the watch event and stops writing.
    old.observe(leases.lease())
    assert not old.may_write()
    assert old_events == [("acquired", None), ("superseded", "new")]


async def test_a_superseded_leader_stops_at_its_next_renew_without_a_watch_event(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    old, new = replica("old", revision=1), replica("new", revision=2)
    await old.step()
    await new.step()
    assert old.may_write(), "not told yet"

    clock.advance(RENEW)
    await old.step()

    assert not old.may_write()
    assert leases.holder() == "new"


async def test_a_higher_revision_is_never_taken_while_renewed(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    new, old = replica("new", revision=5), replica("old", revision=4)
    await new.step()

    await _renew_for(5 * DURATION, clock, new, old)
    old.observe(leases.lease())  # a watch event of a renew changes nothing either
    await old.step()

    assert not old.may_write()
    assert new.may_write()
    assert leases.holder() == "new"


async def test_a_higher_revision_is_taken_once_it_expires(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    new, old = replica("new", revision=5), replica("old", revision=4)
    await new.step()
    await old.step()

    clock.advance(DURATION + 0.1)  # the new revision is gone without a release
    await old.step()

    assert old.may_write()
    assert leases.holder() == "old"


# -- fencing ----------------------------------------------------------------------------------


async def test_a_leader_that_cannot_renew_stops_writing_before_the_lease_could_expire(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    events: list[tuple[str, str | None]] = []
    a, b = replica("a", events=events), replica("b")
    await a.step()
    await b.step()
    leases.fail_with = ApiUnavailable("API server unreachable")

    clock.advance(RENEW)
    await a.step()
    clock.advance(RENEW)
    await a.step()
    clock.advance(DEADLINE_AFTER_RENEW - 2 * RENEW - 0.01)
    assert a.may_write(), "still inside its deadline"

    clock.advance(0.01)
    assert not a.may_write()
    assert events[-1] == ("lost", None)
    leases.fail_with = None
    await b.step()
    assert not b.may_write(), "the leader stopped before anyone could take the lease"

    clock.advance(DURATION - DEADLINE_AFTER_RENEW + 0.1)
    await b.step()
    assert b.may_write()


async def test_a_successful_renew_moves_the_deadline(replica: Replica, clock: FakeClock) -> None:
    a = replica("a")
    await a.step()
    assert a.deadline == pytest.approx(DEADLINE_AFTER_RENEW)

    clock.advance(RENEW)
    wait = await a.step()

    assert a.deadline == pytest.approx(RENEW + DEADLINE_AFTER_RENEW)
    assert wait == pytest.approx(RENEW)


async def test_a_leader_whose_renews_fail_wakes_no_later_than_its_deadline(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    a = replica("a")
    await a.step()
    leases.fail_with = ApiUnavailable("API server unreachable")
    clock.advance(4.0)

    wait = await a.step()

    assert wait == pytest.approx(DEADLINE_AFTER_RENEW - 4.0)


async def test_a_leader_that_comes_back_after_its_deadline_does_not_write(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    # A process paused (SIGSTOP) for longer than the lease: its monotonic clock moved on.
    a, b = replica("a"), replica("b")
    await a.step()
    await b.step()

    clock.advance(DURATION + 0.1)
    await b.step()
    assert b.may_write()

    assert not a.may_write()
    await a.step()
    assert not a.may_write()
    assert leases.holder() == "b"


async def test_a_leader_steps_down_on_observing_another_holder(
    replica: Replica, leases: FakeLeases
) -> None:
    events: list[tuple[str, str | None]] = []
    a = replica("a", revision=3, events=events)
    await a.step()

    a.observe(leases.force_holder("intruder", revision=3))

    assert not a.may_write()
    assert events[-1] == ("lost", "intruder")


async def test_a_stale_watch_event_does_not_depose_the_leader(
    replica: Replica, leases: FakeLeases
) -> None:
    old, new = replica("old", revision=1), replica("new", revision=2)
    await old.step()
    before = leases.lease()  # the old leader's record, as a lagging watch still has it

    await new.step()
    new.observe(before)

    assert new.may_write()


async def test_a_renew_that_finds_the_lease_deleted_stops_the_leader(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    a = replica("a")
    await a.step()
    leases.stored.clear()

    clock.advance(RENEW)
    await a.step()

    assert not a.may_write()


# -- release ----------------------------------------------------------------------------------


async def test_release_on_shutdown_clears_the_holder_and_stops_writing(
    replica: Replica, leases: FakeLeases
) -> None:
    events: list[tuple[str, str | None]] = []
    a = replica("a", events=events)
    await a.step()

    await a.release()

    assert not a.may_write()
    assert leases.holder() is None
    assert events[-1] == ("released", None)
    await a.step()
    assert leases.holder() is None, "a stopping replica never takes the lease again"


async def test_release_by_a_standby_leaves_the_leaders_lease_alone(
    replica: Replica, leases: FakeLeases
) -> None:
    a, b = replica("a"), replica("b")
    await a.step()
    await b.step()

    await b.release()

    assert leases.holder() == "a"
    assert a.may_write()


async def test_release_retries_when_a_late_renew_moved_the_lease(
    replica: Replica, leases: FakeLeases
) -> None:
    a = replica("a")
    await a.step()
    renewed = leases.lease()

    async def concurrent_renew() -> None:
        leases._bump(renewed)  # lands between release's read and its write

    leases.after_read = concurrent_renew
    await a.release()

    assert leases.holder() is None


async def test_a_standby_takes_a_released_lease_on_the_watch_event_not_the_next_poll(
    replica: Replica, leases: FakeLeases
) -> None:
    slow = LeaseSettings(namespace=NAMESPACE, name=NAME, duration=DURATION, retry_period=60.0)
    a = replica("a")
    b = LeaseElector(
        leases, lease=slow, writer=LeaderIdentity(identity="b", revision=1), clock=a.clock
    )
    await a.step()
    runner = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.05)  # b has read the lease and waits up to 60 s
        assert not b.may_write()

        await a.release()
        b.observe(leases.lease())

        await asyncio.wait_for(b.wait_until_leader(), timeout=2)
        assert leases.holder() == "b"
    finally:
        await b.release()
        await asyncio.wait_for(runner, timeout=1)  # release ends the loop


async def test_a_watch_event_during_a_step_is_not_lost(
    replica: Replica, leases: FakeLeases
) -> None:
    slow = LeaseSettings(namespace=NAMESPACE, name=NAME, duration=DURATION, retry_period=60.0)
    a = replica("a")
    b = LeaseElector(
        leases, lease=slow, writer=LeaderIdentity(identity="b", revision=1), clock=a.clock
    )
    await a.step()

    async def released_meanwhile() -> None:
        # b's read is under way when a releases and the watch event arrives.
        await a.release()
        b.observe(leases.lease())

    leases.after_read = released_meanwhile
    runner = asyncio.create_task(b.run())
    try:
        await asyncio.wait_for(b.wait_until_leader(), timeout=2)
    finally:
        await b.release()
        await asyncio.wait_for(runner, timeout=1)  # release ends the loop


async def test_wait_until_leader_returns_once_the_lease_is_taken(replica: Replica) -> None:
    a = replica("a")
    waiter = asyncio.create_task(a.wait_until_leader())
    await asyncio.sleep(0)
    assert not waiter.done()

    await a.step()

    await asyncio.wait_for(waiter, timeout=1)


# -- the loop itself, on fake time ------------------------------------------------------------


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_the_run_loop_takes_the_lease_then_renews_it_every_interval_of_fake_time(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    a = replica("a")
    task = asyncio.create_task(a.run())
    try:
        await _settle()
        assert a.may_write()
        versions = [leases.lease()["metadata"]["resourceVersion"]]

        for _ in range(3):
            clock.advance(RENEW - 0.5)
            await _settle()
            assert leases.lease()["metadata"]["resourceVersion"] == versions[-1]  # not yet
            clock.advance(0.5)
            await _settle()
            versions.append(leases.lease()["metadata"]["resourceVersion"])
            assert versions[-1] != versions[-2]
            assert a.may_write()
    finally:
        await a.release()
        await _settle()
        assert task.done()
    assert leases.holder() is None


async def test_failing_lease_calls_back_off_and_are_logged_once_per_outage(
    replica: Replica, leases: FakeLeases, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    a = replica("a")
    a.jitter.seed(7)
    leases.fail_with = ApiUnavailable("connection refused")
    caplog.set_level("INFO", logger="trigger_operator.leadership.elector")

    waits = [await a.step() for _ in range(8)]

    # Doubling from the retry period, with jitter in [0.5, 1], up to the cap.
    for n, wait in enumerate(waits):
        ceiling = min(30.0, RETRY * 2**n)
        assert ceiling / 2 <= wait <= ceiling, (n, wait)
    assert waits[-1] > 10 * RETRY / 2
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 1

    leases.fail_with = None
    await a.step()
    assert a.may_write()
    assert [r.getMessage() for r in caplog.records].count("lease calls work again") == 1


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (Forbidden("leases is forbidden", status=403), "not allowed to use the Lease"),
        (NotFound('namespaces "ops" not found', status=404), "namespace 'ops' does not exist"),
    ],
)
async def test_a_lease_unusable_for_a_minute_stops_the_elector_with_one_clear_error(
    replica: Replica, leases: FakeLeases, clock: FakeClock, error: Exception, says: str
) -> None:
    a = replica("a")
    leases.fail_with = error

    await a.step()
    clock.advance(UNUSABLE_AFTER - 1)
    await a.step()  # a blip, RBAC still propagating: keep trying
    clock.advance(1)
    with pytest.raises(LeaseUnusable, match=says):
        await a.step()


async def test_an_ordinary_outage_never_stops_the_elector(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    a = replica("a")
    leases.fail_with = ApiUnavailable("connection refused")
    for _ in range(10):
        clock.advance(UNUSABLE_AFTER)
        await a.step()
    leases.fail_with = None
    await a.step()
    assert a.may_write()


async def test_each_take_of_the_lease_is_a_new_term_renews_are_not(
    replica: Replica, leases: FakeLeases, clock: FakeClock
) -> None:
    # A process paused past its deadline that takes the Lease back at once (a higher
    # revision supersedes): loss and take may both fall between two turns of the
    # scheduler, which tells the takeover by the term.
    low, high = replica("low", revision=1), replica("high", revision=2)
    assert high.term == 0
    await high.step()
    assert high.may_write() and high.term == 1
    clock.advance(1.0)
    await high.step()  # a renew
    assert high.term == 1

    await low.step()  # sees the Lease; expiry counts from now
    clock.advance(DURATION + 0.1)  # "high" paused past its deadline
    await low.step()
    assert low.may_write() and low.term == 1
    await high.step()  # resumed: its renew finds another holder, and it looks again
    await high.step()  # at once: it supersedes the lower revision
    assert high.may_write() and leases.holder() == "high"
    assert high.term == 2
