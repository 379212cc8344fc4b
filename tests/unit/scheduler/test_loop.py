"""The scheduler loop on fake time: when it dispatches, and what it never does.

The in-memory gateway delivers every change as a watch event to the scheduler, as kopf
does; the fake clock drives both "now" and every wait of the loop, so an hour passes in
a call to `advance` and nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.scheduler.fakes import FakeGate, FakeGateway, MemoryLedger
from trigger_operator.clock import FakeClock
from trigger_operator.jobs.builder import ANNOTATION_SCHEDULED_FOR
from trigger_operator.kube.gateway import KubeError
from trigger_operator.ledger.records import LedgerStatus
from trigger_operator.metrics import Metrics
from trigger_operator.scheduler.cache import TriggerCache, TriggerEntry
from trigger_operator.scheduler.loop import STARTS_PER_TURN, Scheduler
from trigger_operator.scheduler.reconcile import Reconciler
from trigger_operator.scheduler.recorder import RunRecorder

UID = "0f3c2a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
START = datetime(2026, 11, 26, 2, 25, tzinfo=UTC)
TEMPLATE: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}
        }
    }
}
RUNNING = {"startTime": "2026-11-26T02:30:01Z", "active": 1}


async def settle() -> None:
    """Let every task that can run, run (the fakes never wait on anything real)."""
    for _ in range(200):
        await asyncio.sleep(0)


class Loop:
    """A scheduler wired to the fakes, running as a task."""

    def __init__(self, *, leading: bool = True, due_concurrency: int | None = None) -> None:
        registry = CollectorRegistry()
        self.clock = FakeClock(START)
        self.gate = FakeGate(leading=leading)
        self.ledger = MemoryLedger(self.clock, registry)
        recorder = RunRecorder(
            ledger=self.ledger.writer,
            metrics=Metrics.create(registry),
            gate=self.gate,
            clock=self.clock,
        )
        self.gateway = FakeGateway(self.clock)
        self.reconciler = Reconciler(
            gateway=self.gateway, gate=self.gate, clock=self.clock, recorder=recorder
        )
        self.scheduler = Scheduler(
            reconciler=self.reconciler,
            recorder=recorder,
            cache=TriggerCache(),
            gate=self.gate,
            clock=self.clock,
            concurrency=4,
            due_concurrency=due_concurrency,
            lister=self.gateway,
        )
        self.gateway.feed = self.scheduler
        self.passes: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        reconcile = self.reconciler.reconcile

        async def counted(entry: TriggerEntry) -> datetime | None:
            self.passes.append(entry.name)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await reconcile(entry)
            finally:
                self.in_flight -= 1

        self.reconciler.reconcile = counted  # type: ignore[method-assign]

    def add(self, name: str = "every-5", uid: str = UID, **spec: Any) -> None:
        self.gateway.add_trigger(
            {"jobTemplate": TEMPLATE, **spec}, name=name, uid=uid, created=START
        )

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await settle()

    def job_times(self) -> list[str]:
        return sorted(
            b["metadata"]["annotations"][ANNOTATION_SCHEDULED_FOR]
            for b in self.gateway.job_bodies()
        )


@pytest.fixture
async def loop() -> AsyncIterator[Loop]:
    made = Loop()
    task = asyncio.create_task(made.scheduler.run())
    yield made
    await made.scheduler.stop()
    task.cancel()
    made.ledger.close()


async def test_a_trigger_is_dispatched_when_the_clock_reaches_its_time_not_before(
    loop: Loop,
) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()
    # The first look computes nextRunAt; its status write comes back as an event.
    assert set(loop.passes) == {"every-5"}
    assert loop.gateway.triggers[("team-a", "every-5")]["status"]["nextRunAt"] == (
        "2026-11-26T02:30:00Z"
    )

    await loop.advance(299)
    assert loop.job_times() == []
    await loop.advance(1)
    assert loop.job_times() == ["2026-11-26T02:30:00Z"]
    await loop.advance(300)
    assert loop.job_times() == ["2026-11-26T02:30:00Z", "2026-11-26T02:35:00Z"]


async def test_a_rescheduled_trigger_leaves_no_pass_at_its_old_time(loop: Loop) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()
    loop.gateway.edit_trigger("team-a", "every-5", lambda b: b["spec"].update(schedule="0 3 * * *"))
    await settle()
    passes = len(loop.passes)

    await loop.advance(300)  # 02:30, where the stale heap entry was due

    assert len(loop.passes) == passes
    assert loop.job_times() == []
    await loop.advance(1800)
    assert loop.job_times() == ["2026-11-26T03:00:00Z"]


async def test_an_event_during_a_pass_is_kept_and_passes_of_one_trigger_never_overlap(
    loop: Loop,
) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()

    def edit_during_the_pass() -> None:
        loop.gateway.edit_trigger(
            "team-a", "every-5", lambda b: b["metadata"].setdefault("labels", {}).update(a="b")
        )

    loop.gateway.before("create_job", edit_during_the_pass, once=True)
    passes = len(loop.passes)

    await loop.advance(300)

    assert loop.most_in_flight == 1
    assert len(loop.passes) >= passes + 2  # the due pass, then one for the event
    assert loop.job_times() == ["2026-11-26T02:30:00Z"]


async def test_a_pass_that_fails_unexpectedly_is_retried_after_the_retry_delay(
    loop: Loop,
) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()
    loop.gateway.fail("create_job", KubeError("unexpected"))

    await loop.advance(300)
    assert loop.job_times() == []
    await loop.advance(4)
    assert loop.job_times() == []
    await loop.advance(1)
    assert loop.job_times() == ["2026-11-26T02:30:00Z"]


async def test_a_deleted_trigger_is_forgotten_and_its_running_jobs_cancelled(loop: Loop) -> None:
    loop.add(schedule="*/5 * * * *")
    await loop.advance(300)
    (job,) = loop.gateway.job_bodies()
    loop.gateway.set_job_status("team-a", job["metadata"]["name"], RUNNING)
    await settle()
    trigger = loop.gateway.triggers.pop(("team-a", "every-5"))

    loop.scheduler.on_trigger_event("DELETED", trigger)
    await loop.advance(600)

    assert loop.job_times() == ["2026-11-26T02:30:00Z"]  # nothing new
    assert loop.ledger.written()[-1] == (
        f"{UID}/2026-11-26T02:30:00Z",
        LedgerStatus.CANCELLED,
        "TriggerDeleted",
    )


async def test_a_standby_dispatches_nothing_then_leading_looks_at_every_trigger() -> None:
    standby = Loop(leading=False)
    task = asyncio.create_task(standby.scheduler.run())
    try:
        standby.add(schedule="*/5 * * * *")
        standby.add(name="hourly", uid="1f3c2a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", schedule="0 * * * *")
        await standby.advance(3600)
        assert standby.passes == []
        assert standby.gateway.job_bodies() == []

        standby.gate.set_leading(True)
        await settle()

        assert set(standby.passes) == {"every-5", "hourly"}
        # Catch-up Latest: each starts its newest due time.
        assert standby.job_times() == ["2026-11-26T03:00:00Z", "2026-11-26T03:25:00Z"]
    finally:
        await standby.scheduler.stop()
        task.cancel()
        standby.ledger.close()


async def test_a_new_leader_looks_at_the_due_triggers_before_the_others() -> None:
    standby = Loop(leading=False)
    task = asyncio.create_task(standby.scheduler.run())
    tomorrow = {"observedGeneration": 1, "nextRunAt": "2026-11-27T02:00:00Z"}
    try:
        for index in range(30):
            name = f"daily-{index:02d}"
            standby.add(name=name, uid=f"uid-daily-{index:02d}", schedule="0 2 * * *")
            standby.gateway.edit_trigger("team-a", name, lambda body: body.update(status=tomorrow))
        standby.add(name="every-5", schedule="*/5 * * * *")
        standby.gateway.edit_trigger(
            "team-a",
            "every-5",
            lambda body: body.update(status={**tomorrow, "nextRunAt": "2026-11-26T02:25:00Z"}),
        )
        standby.add(name="new", uid="uid-new", schedule="0 3 * * *")  # no status yet
        await settle()

        standby.gate.set_leading(True)
        await settle()

        # The overdue one first, then the one without status (it may be due); the
        # thirty due tomorrow after them, and each looked at once.
        assert standby.passes[:2] == ["every-5", "new"]
        assert sorted(standby.passes[2:]) == [f"daily-{index:02d}" for index in range(30)]
        assert standby.most_in_flight <= 4
    finally:
        await standby.scheduler.stop()
        task.cancel()
        standby.ledger.close()


async def test_losing_leadership_pauses_dispatch_until_it_comes_back(loop: Loop) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()
    loop.gate.set_leading(False)
    await loop.advance(600)
    assert loop.job_times() == []

    loop.gate.set_leading(True)
    await settle()

    assert loop.job_times() == ["2026-11-26T02:35:00Z"]
    assert loop.clock.now() - START == timedelta(minutes=10)


# -- resync: the cache agrees with a listing --------------------------------------------------


async def test_a_resync_drops_a_trigger_whose_deletion_no_watch_reported(loop: Loop) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()
    # Deleted while the watch was relisting: no DELETED event ever comes.
    del loop.gateway.triggers[("team-a", "every-5")]

    await loop.scheduler.resync()
    await loop.advance(3600)

    assert loop.scheduler.cache.triggers == {}
    assert loop.job_times() == []


async def test_a_resync_drops_a_vanished_job_so_forbid_does_not_skip_behind_a_ghost(
    loop: Loop,
) -> None:
    loop.add(schedule="*/5 * * * *", concurrencyPolicy="Forbid")
    await loop.advance(300)
    (job,) = loop.gateway.job_bodies()
    loop.gateway.set_job_status("team-a", job["metadata"]["name"], RUNNING)
    await settle()
    del loop.gateway.jobs[("team-a", job["metadata"]["name"])]  # no DELETED delivered

    await loop.scheduler.resync()
    await loop.advance(300)

    assert loop.job_times() == ["2026-11-26T02:35:00Z"]
    (entry,) = loop.scheduler.cache.triggers.values()
    assert list(entry.jobs) == [loop.gateway.job_bodies()[0]["metadata"]["name"]]


async def test_a_resync_keeps_what_the_watch_delivered_after_the_listing(loop: Loop) -> None:
    listing = await loop.gateway.list_triggers(None)  # read before the trigger exists
    jobs = await loop.gateway.list_jobs(None, "triggers.dev/trigger-uid")
    loop.add(schedule="*/5 * * * *")
    await settle()

    gone, vanished = loop.scheduler.cache.drop_unlisted(
        trigger_uids={body["metadata"]["uid"] for body in listing.items},
        triggers_version=listing.resource_version,
        job_keys={(b["metadata"]["namespace"], b["metadata"]["name"]) for b in jobs.items},
        jobs_version=jobs.resource_version,
    )

    assert (gone, vanished) == ([], [])
    assert list(loop.scheduler.cache.triggers) == [UID]


async def test_a_resync_of_an_unchanged_world_causes_no_pass(loop: Loop) -> None:
    loop.add(schedule="*/5 * * * *")
    await settle()
    passes = len(loop.passes)

    await loop.scheduler.resync()
    await settle()

    assert len(loop.passes) == passes


async def test_jobs_of_a_deleted_trigger_are_released_for_the_garbage_collector(
    loop: Loop,
) -> None:
    loop.add(schedule="*/5 * * * *")
    await loop.advance(300)
    (job,) = loop.gateway.job_bodies()
    trigger = loop.gateway.triggers.pop(("team-a", "every-5"))
    loop.scheduler.on_trigger_event("DELETED", trigger)
    await settle()

    loop.gateway.remove_job("team-a", job["metadata"]["name"])  # the garbage collector
    await settle()

    assert loop.gateway.job_bodies() == []
    assert "release_job" in loop.gateway.calls


async def test_a_running_job_deleted_with_its_trigger_is_cancelled_as_trigger_deleted(
    loop: Loop,
) -> None:
    loop.add(schedule="*/5 * * * *")
    await loop.advance(300)
    (job,) = loop.gateway.job_bodies()
    loop.gateway.set_job_status("team-a", job["metadata"]["name"], RUNNING)
    await settle()
    # The garbage collector marks the Job before the trigger's DELETED event arrives.
    trigger = loop.gateway.triggers.pop(("team-a", "every-5"))
    loop.gateway.remove_job("team-a", job["metadata"]["name"])
    await settle()
    loop.scheduler.on_trigger_event("DELETED", trigger)
    await settle()

    assert loop.gateway.job_bodies() == []
    cancelled = [row for row in loop.ledger.written() if row[1] is LedgerStatus.CANCELLED]
    assert cancelled[0][2] == "TriggerDeleted"


class HangingPatches:
    """Status patches that wait until `release` (set in any case when the test ends)."""

    def __init__(self, loop: Loop) -> None:
        self.release = asyncio.Event()
        patch = loop.gateway.patch_trigger_status

        async def hanging(*args: Any, **kwargs: Any) -> dict[str, Any]:
            await self.release.wait()
            return await patch(*args, **kwargs)

        loop.gateway.patch_trigger_status = hanging  # type: ignore[method-assign]


@pytest.fixture
async def split_loop() -> AsyncIterator[tuple[Loop, list[HangingPatches]]]:
    """Four slots for passes, sixteen for due ones."""
    made = Loop(due_concurrency=16)
    hangs: list[HangingPatches] = []
    task = asyncio.create_task(made.scheduler.run())
    yield made, hangs
    for hang in hangs:
        hang.release.set()
    await made.scheduler.stop()
    task.cancel()
    made.ledger.close()


async def test_due_passes_start_their_creates_while_earlier_passes_wait_on_status_patches(
    split_loop: tuple[Loop, list[HangingPatches]],
) -> None:
    # Ten triggers fall due at once while every status patch hangs: each due Job is
    # created, none waits for a slot that a pass blocked on its patch holds (with one
    # pool of four slots, six waited).
    made, hangs = split_loop
    for index in range(10):
        made.add(name=f"every-5-{index}", uid=f"uid-{index:02d}", schedule="*/5 * * * *")
    await settle()
    assert made.job_times() == []
    hangs.append(hang := HangingPatches(made))
    await made.advance(300)
    assert made.job_times() == ["2026-11-26T02:30:00Z"] * 10
    assert made.in_flight == 10
    hang.release.set()
    await settle()
    assert made.in_flight == 0


async def test_passes_that_are_not_due_keep_to_their_own_slots(
    split_loop: tuple[Loop, list[HangingPatches]],
) -> None:
    made, hangs = split_loop
    hangs.append(hang := HangingPatches(made))
    for index in range(10):
        made.add(name=f"daily-{index}", uid=f"uid-{index:02d}", schedule="0 2 * * *")
    await settle()
    assert made.in_flight == 4  # first looks of new triggers: back-fill, four at once
    hang.release.set()
    await settle()
    assert made.in_flight == 0
    assert made.most_in_flight == 4
    assert len(set(made.passes)) == 10


async def test_a_time_that_comes_while_its_trigger_has_a_pass_running_stays_due(
    split_loop: tuple[Loop, list[HangingPatches]],
) -> None:
    # The pass running (a Job event's, say) when the time comes: once it ends the trigger
    # waits for a due slot, not behind the back-fill.
    made, _ = split_loop
    made.add(schedule="*/5 * * * *")
    await settle()
    scheduler = made.scheduler
    now = made.clock.now()
    scheduler._running.add(UID)
    scheduler._queue(UID, now, due=True)
    assert UID in scheduler._dirty
    assert UID not in scheduler._due_queued
    scheduler._running.discard(UID)
    scheduler._queue_dirty(now)
    assert UID in scheduler._due_queued
    assert UID not in scheduler._queued
    assert not scheduler._due_after_run


async def test_a_new_term_is_a_takeover_even_when_its_loss_was_never_seen(loop: Loop) -> None:
    # Lost and taken again between two turns of the loop (a resumed process supersedes
    # within milliseconds): every trigger is looked at again, as after any takeover.
    loop.add(schedule="0 3 * * *")
    await settle()
    before = len(loop.passes)
    await loop.advance(1)
    assert len(loop.passes) == before  # nothing to do: no pass
    loop.gate.term += 1
    loop.gate.changed().set()
    await settle()
    assert len(loop.passes) == before + 1


class QueuedCreates:
    """Job creates that leave from a sender task, as a real client's queue sends them:
    records how many passes had begun when the first create left."""

    def __init__(self, loop: Loop) -> None:
        self.queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]]
        self.queue = asyncio.Queue()
        self.passes_begun_at_first_send: int | None = None
        self.sent = 0
        create = loop.gateway.create_job

        async def queued(body: dict[str, Any]) -> dict[str, Any]:
            answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.queue.put_nowait((body, answer))
            return await answer

        async def send() -> None:
            while True:
                body, answer = await self.queue.get()
                if self.passes_begun_at_first_send is None:
                    self.passes_begun_at_first_send = len(loop.passes)
                self.sent += 1
                try:
                    answer.set_result(await create(body))
                except Exception as error:  # handed to the pass, as a client would
                    answer.set_exception(error)

        loop.gateway.create_job = queued  # type: ignore[method-assign]
        self.sender = asyncio.create_task(send())


async def test_a_burst_of_due_passes_sends_its_first_creates_before_every_pass_has_planned() -> (
    None
):
    # 100 triggers fall due at once, with slots for all of them: the first Job create
    # leaves after the first batch of passes has planned, not after all 100 (each pass
    # plans before its first request, so the 100th plan held up the first create).
    made = Loop(due_concurrency=200)
    task = asyncio.create_task(made.scheduler.run())
    try:
        for index in range(100):
            made.add(name=f"every-5-{index}", uid=f"uid-{index:03d}", schedule="*/5 * * * *")
        await settle()
        creates = QueuedCreates(made)
        begun = len(made.passes)
        await made.advance(300)
        for _ in range(20):
            await settle()
        assert made.job_times() == ["2026-11-26T02:30:00Z"] * 100
        assert creates.passes_begun_at_first_send is not None
        assert creates.passes_begun_at_first_send - begun <= STARTS_PER_TURN
        creates.sender.cancel()
    finally:
        await made.scheduler.stop()
        task.cancel()
        made.ledger.close()


class EchoFirst:
    """Status patches whose watch event arrives before their answer (as it often does
    on a busy replica); `then` runs once, after the first patch, before its answer."""

    def __init__(self, loop: Loop, then: Any = None) -> None:
        patch = loop.gateway.patch_trigger_status
        self.then = then

        async def echo_first(*args: Any, **kwargs: Any) -> dict[str, Any]:
            answer = await patch(*args, **kwargs)
            if self.then is not None:
                then, self.then = self.then, None
                then()
            for _ in range(5):
                await asyncio.sleep(0)  # the echo (and any later event) is delivered
            return answer

        loop.gateway.patch_trigger_status = echo_first  # type: ignore[method-assign]


async def test_the_echo_of_a_pass_own_status_patch_brings_no_second_pass(loop: Loop) -> None:
    EchoFirst(loop)
    loop.add(schedule="*/5 * * * *")
    await settle()
    assert loop.passes == ["every-5"]
    assert loop.gateway.triggers[("team-a", "every-5")]["status"]["nextRunAt"] == (
        "2026-11-26T02:30:00Z"
    )


async def test_a_change_by_someone_else_while_a_pass_runs_gets_a_second_pass(loop: Loop) -> None:
    def edit() -> None:
        loop.gateway.edit_trigger(
            "team-a", "every-5", lambda body: body["spec"].update(schedule="*/10 * * * *")
        )

    EchoFirst(loop, then=edit)
    loop.add(schedule="*/5 * * * *")
    await settle()
    assert loop.passes == ["every-5", "every-5"]
    status = loop.gateway.triggers[("team-a", "every-5")]["status"]
    assert status["observedGeneration"] == 2
