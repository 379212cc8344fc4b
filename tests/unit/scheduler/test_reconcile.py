"""One pass over one trigger, on an in-memory gateway and a fake clock.

Each test arranges the world (triggers, Jobs, failures of the API on demand), runs
passes, and reads the outcome the way the cluster would show it: Jobs, status, Events
and ledger rows. The same behaviours are proved against the real API server by the
integration tier; here the interleavings that are hard to provoke there are chosen.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.scheduler.fakes import FakeGate, FakeGateway, MemoryLedger
from trigger_operator.clock import FakeClock
from trigger_operator.jobs.builder import (
    ANNOTATION_RUN_KIND,
    ANNOTATION_RUN_NOW,
    ANNOTATION_SCHEDULED_FOR,
    LABEL_TRIGGER_UID,
    LeaderIdentity,
    TriggerRef,
    build_job,
    scheduled_job_name,
)
from trigger_operator.jobs.state import observe_job
from trigger_operator.kube.gateway import ApiUnavailable, Conflict, Invalid, KubeError, NotFound
from trigger_operator.ledger.records import LedgerStatus, RunRecord, RunRef
from trigger_operator.metrics import Metrics
from trigger_operator.models.instants import format_instant
from trigger_operator.models.requests import (
    ANNOTATION_BACKFILL,
    ANNOTATION_RESUME,
    ANNOTATION_RUN_NOW_PAYLOAD,
    BackfillRequest,
    run_now_payload_annotation,
)
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import NOT_STARTED_HISTORY_LIMIT, TriggerStatus
from trigger_operator.schedule.jitter import jitter_for
from trigger_operator.scheduler.cache import TriggerCache, TriggerEntry
from trigger_operator.scheduler.reconcile import Reconciler
from trigger_operator.scheduler.recorder import RunRecorder
from trigger_operator.scheduler.runs import handled

UID = "0f3c2a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
CREATED = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
NAMESPACE, NAME = "team-a", "nightly"
TEMPLATE: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}
        }
    }
}


def failed(at: datetime) -> dict[str, Any]:
    """A Job's status once the Job controller gave up on it at `at`."""
    return {
        "failed": 1,
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "lastTransitionTime": format_instant(at),
            }
        ],
    }


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 26, hour, minute, second, tzinfo=UTC)


class World:
    """One trigger's world: the gateway, the gate, the ledger, and the reconciler."""

    def __init__(self) -> None:
        registry = CollectorRegistry()
        self.clock = FakeClock(CREATED)
        self.gateway = FakeGateway(self.clock)
        self.gate = FakeGate()
        self.ledger = MemoryLedger(self.clock, registry)
        self.metrics = Metrics.create(registry)
        self.registry = registry
        recorder = RunRecorder(
            ledger=self.ledger.writer, metrics=self.metrics, gate=self.gate, clock=self.clock
        )
        self.reconciler = Reconciler(
            gateway=self.gateway, gate=self.gate, clock=self.clock, recorder=recorder
        )
        self.cache = TriggerCache()
        self.ref = TriggerRef(namespace=NAMESPACE, name=NAME, uid=UID)

    def trigger(self, annotations: dict[str, str] | None = None, **spec: Any) -> TriggerEntry:
        body = self.gateway.add_trigger(
            {"jobTemplate": TEMPLATE, **spec}, uid=UID, created=CREATED, annotations=annotations
        )
        return self.cache.upsert_trigger(body)

    def at(self, instant: datetime) -> None:
        self.clock.advance((instant - self.clock.now()).total_seconds())

    async def run(self, entry: TriggerEntry) -> datetime | None:
        """One pass, then the cache sees the Jobs as the watch would report them."""
        due = await self.reconciler.reconcile(entry)
        self.observe(entry)
        return due

    def observe(self, entry: TriggerEntry) -> None:
        """The cache's view of the trigger's Jobs, as the label-filtered watch gives it."""
        entry.jobs = {
            body["metadata"]["name"]: observe_job(body)
            for body in self.gateway.job_bodies()
            if body["metadata"]["labels"].get(LABEL_TRIGGER_UID) == entry.uid
        }

    def status(self) -> dict[str, Any]:
        return dict(self.gateway.triggers[(NAMESPACE, NAME)].get("status") or {})

    def job_times(self) -> list[str]:
        """The scheduled times of the Jobs that exist, oldest first."""
        return sorted(b["metadata"]["annotations"][ANNOTATION_SCHEDULED_FOR] for b in self.jobs())

    def jobs(self) -> list[dict[str, Any]]:
        return self.gateway.job_bodies()

    def key(self, scheduled_for: datetime) -> str:
        return f"{UID}/{format_instant(scheduled_for)}"

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def world() -> Iterator[World]:
    made = World()
    yield made
    made.ledger.close()


# -- the ordinary pass ---------------------------------------------------------------------


async def test_a_due_time_starts_one_job_then_status_moves_the_cursor(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))

    due = await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:30:00Z"]
    status = world.status()
    assert status["cursor"] == "2026-11-26T02:30:00Z"
    assert status["nextRunAt"] == "2026-11-27T02:30:00Z"
    assert status["lastScheduleTime"] == "2026-11-26T02:30:00Z"
    assert [c["reason"] for c in status["conditions"]] == ["Scheduled"]
    assert due == at(2, 30) + timedelta(days=1)
    assert world.ledger.written() == [(world.key(at(2, 30)), LedgerStatus.PENDING, None)]
    assert world.metric("trigger_operator_runs_total", result="started") == 1


async def test_a_second_pass_at_the_same_instant_creates_nothing(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    await world.run(entry)
    creates = world.gateway.calls.count("create_job")

    await world.run(entry)

    assert world.gateway.calls.count("create_job") == creates
    assert len(world.jobs()) == 1


async def test_a_trigger_not_yet_due_shows_its_next_run_and_creates_nothing(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")

    due = await world.run(entry)

    assert world.jobs() == []
    assert world.status()["nextRunAt"] == "2026-11-26T02:30:00Z"
    assert due == at(2, 30)


# -- conflicts, foreign Jobs, fencing, outages ------------------------------------------


async def test_a_status_patch_answered_409_rereads_and_the_next_pass_only_advances(
    world: World,
) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))

    def someone_else_writes() -> None:
        world.gateway.edit_trigger(
            NAMESPACE, NAME, lambda body: body["metadata"].setdefault("labels", {}).update(x="y")
        )

    world.gateway.before("patch_trigger_status", someone_else_writes, once=True)

    retry_at = await world.run(entry)

    assert retry_at == world.clock.now()  # plan again at once
    assert "cursor" not in world.status()
    assert entry.body["metadata"]["labels"] == {"x": "y"}  # the fresh copy was read
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:30:00Z"]
    assert world.gateway.calls.count("create_job") == 1  # the second pass knew the Job
    assert world.status()["cursor"] == "2026-11-26T02:30:00Z"


async def test_a_job_of_that_name_owned_by_another_trigger_is_refused_with_growing_back_off(
    world: World,
) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    name = scheduled_job_name(world.ref, at(2, 30))
    world.gateway.jobs[(NAMESPACE, name)] = {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": "foreign",
            "labels": {},
            "ownerReferences": [{"kind": "ScheduledTrigger", "name": "other", "uid": "other"}],
        },
        "spec": {},
    }
    world.at(at(2, 30))

    first = await world.run(entry)
    second = await world.run(entry)

    assert first == at(2, 30) + timedelta(seconds=10)
    assert second == at(2, 30) + timedelta(seconds=20)
    assert "cursor" not in world.status()  # the time is not given up


async def test_losing_the_gate_mid_pass_stops_before_status_and_ledger(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    world.gateway.before("create_job", lambda: world.gate.set_leading(False))

    due = await world.run(entry)

    assert due is None
    assert world.job_times() == ["2026-11-26T02:30:00Z"]  # in flight when the gate closed
    assert "patch_trigger_status" not in world.gateway.calls
    assert world.ledger.written() == []


async def test_an_unavailable_api_is_tried_again_after_the_retry_delay(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    world.gateway.fail("create_job", ApiUnavailable("connection refused"))

    assert await world.run(entry) == at(2, 30, 5)
    assert world.jobs() == []
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:30:00Z"]


async def test_a_conflict_on_create_that_is_not_already_exists_rereads(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    world.gateway.fail("create_job", Conflict("operation cannot be fulfilled", status=409))

    assert await world.run(entry) == world.clock.now()
    assert "read_trigger" in world.gateway.calls


# -- crash leftovers and catch-up ---------------------------------------------------------


async def test_a_missed_time_whose_job_a_crashed_leader_created_is_a_run(world: World) -> None:
    entry = world.trigger(schedule="*/10 * * * *", catchUp="Latest")
    world.at(at(2, 10))
    await world.run(entry)  # 02:10 runs; the cursor is there
    world.at(at(2, 20))
    # A leader started 02:20 and died before moving the cursor.
    spec = TriggerSpec.model_validate(entry.body["spec"])
    await world.reconciler.runs.start(world.ref, spec, at(2, 20), RunKind.SCHEDULED, due=at(2, 20))
    world.at(at(2, 40, 30))

    await world.run(entry)

    assert world.job_times() == [
        "2026-11-26T02:10:00Z",
        "2026-11-26T02:20:00Z",
        "2026-11-26T02:40:00Z",
    ]
    status = world.status()
    assert status["missedRuns"] == 1  # 02:30 only
    assert status["lastMissedTime"] == "2026-11-26T02:30:00Z"
    missed = [row for row in world.ledger.written() if row[1] is LedgerStatus.MISSED]
    assert missed == [(world.key(at(2, 30)), LedgerStatus.MISSED, "Missed")]
    # Two times were due in one pass: the operator was not dispatching.
    assert _job_at(world, at(2, 40))["metadata"]["annotations"][ANNOTATION_RUN_KIND] == "catch-up"


# -- concurrency policy ------------------------------------------------------------------


async def test_forbid_skips_a_time_while_an_earlier_run_is_active(world: World) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Forbid")
    world.at(at(2, 10))
    await world.run(entry)
    world.at(at(2, 20))

    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    assert world.status()["cursor"] == "2026-11-26T02:20:00Z"
    skipped = [row for row in world.ledger.written() if row[1] is LedgerStatus.SKIPPED]
    assert skipped == [(world.key(at(2, 20)), LedgerStatus.SKIPPED, "ConcurrencyForbid")]


async def test_forbid_starts_the_next_time_once_the_active_run_finished(world: World) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Forbid")
    world.at(at(2, 10))
    await world.run(entry)
    (first,) = world.jobs()
    world.gateway.set_job_status(NAMESPACE, first["metadata"]["name"], failed(at(2, 15)))
    world.at(at(2, 20))

    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z", "2026-11-26T02:20:00Z"]


async def test_replace_deletes_the_active_run_then_starts_the_new_one(world: World) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Replace")
    world.at(at(2, 10))
    await world.run(entry)
    world.at(at(2, 20))

    world.ledger.sink.available.clear()  # the ledger is slow: the rows wait in its queue
    again = await world.run(entry)
    # The replaced Job waits, marked for deletion, until the ledger has its row.
    assert again == at(2, 20) + timedelta(seconds=2)
    assert len(world.job_times()) == 2
    world.ledger.sink.available.set()
    rows = world.ledger.written()
    assert (world.key(at(2, 10)), LedgerStatus.CANCELLED, "Replaced") in rows
    assert rows[-1] == (world.key(at(2, 20)), LedgerStatus.PENDING, None)
    world.at(again)
    assert await world.run(entry) == at(2, 30)

    assert world.job_times() == ["2026-11-26T02:20:00Z"]
    assert world.metric("trigger_operator_runs_total", result="cancelled") == 1


# -- run-now, history, jitter, validation ----------------------------------------------------


async def test_each_run_now_value_starts_exactly_one_manual_run(world: World) -> None:
    entry = world.trigger({ANNOTATION_RUN_NOW: "first"}, schedule="0 9 * * *")

    await world.run(entry)
    await world.run(entry)

    manual = [b for b in world.jobs() if b["metadata"]["annotations"].get(ANNOTATION_RUN_NOW)]
    assert len(manual) == 1
    assert [r["value"] for r in world.status()["runNow"]] == ["first"]
    body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda b: b["metadata"]["annotations"].update({ANNOTATION_RUN_NOW: "2nd"})
    )
    entry.body = body
    await world.run(entry)
    assert len(world.jobs()) == 2
    assert [r["value"] for r in world.status()["runNow"]] == ["first", "2nd"]


async def test_failed_jobs_beyond_the_history_limit_are_pruned_oldest_first(
    world: World,
) -> None:
    entry = world.trigger(
        schedule="*/10 * * * *", failedRunsHistoryLimit=1, successfulRunsHistoryLimit=0
    )
    for minute in (10, 20, 30):
        world.at(at(2, minute))
        await world.run(entry)
        newest = _job_at(world, at(2, minute))
        world.gateway.set_job_status(
            NAMESPACE, newest["metadata"]["name"], failed(at(2, minute, 5))
        )
        world.observe(entry)
    world.at(at(2, 35))

    world.ledger.written()  # 02:10, pruned at 02:30, has its final row now
    world.ledger.sink.available.clear()
    again = await world.run(entry)
    # 02:10 went; 02:20, pruned now, waits (marked for deletion) for its final row.
    assert world.job_times() == ["2026-11-26T02:20:00Z", "2026-11-26T02:30:00Z"]
    assert again == at(2, 35, 2)
    world.ledger.sink.available.set()
    world.ledger.written()
    world.observe(entry)
    world.at(again)
    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:30:00Z"]
    assert world.gateway.calls.count("delete_job") == 2


async def test_jitter_delays_the_job_but_not_the_scheduled_time(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *", jitterSeconds=600)
    jitter = jitter_for(UID, 600)
    assert jitter > timedelta(seconds=1), "the test needs a jitter to observe"

    world.at(at(2, 30) + jitter - timedelta(seconds=1))
    due = await world.run(entry)

    assert world.jobs() == []
    assert world.status()["nextRunAt"] == "2026-11-26T02:30:00Z"
    assert due == at(2, 30) + jitter

    world.at(at(2, 30) + jitter)
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:30:00Z"]
    assert world.jobs()[0]["metadata"]["annotations"][ANNOTATION_RUN_KIND] == "scheduled"


async def test_an_invalid_job_template_is_reported_once_and_checked_once(world: World) -> None:
    template = {"spec": {"template": {"spec": {"containers": [{"name": "run"}]}}}}
    body = world.gateway.add_trigger(
        {"schedule": "30 2 * * *", "jobTemplate": template}, uid=UID, created=CREATED
    )
    entry = world.cache.upsert_trigger(body)
    world.at(at(2, 30))

    assert await world.run(entry) is None
    await world.run(entry)

    assert world.jobs() == []
    (ready,) = world.status()["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidJobTemplate")
    assert "containers[0].image" in ready["message"]
    assert [e["reason"] for e in world.gateway.events] == ["InvalidJobTemplate"]
    assert world.gateway.calls.count("dry_run_job") == 1
    assert world.gateway.calls.count("patch_trigger_status") == 1


async def test_a_new_leader_does_not_dry_run_a_generation_status_shows_ready(
    world: World,
) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    await world.run(entry)
    assert world.gateway.calls.count("dry_run_job") == 1
    successor = Reconciler(
        gateway=world.gateway,
        gate=world.gate,
        clock=world.clock,
        recorder=world.reconciler.recorder,
    )
    fresh = TriggerCache().upsert_trigger(world.gateway.triggers[(NAMESPACE, NAME)])
    world.at(at(2, 30))

    await successor.reconcile(fresh)

    assert world.gateway.calls.count("dry_run_job") == 1
    assert world.job_times() == ["2026-11-26T02:30:00Z"]


async def test_one_template_in_one_namespace_is_dry_run_once_for_many_triggers(
    world: World,
) -> None:
    spec = {"schedule": "30 2 * * *", "jobTemplate": TEMPLATE}
    entries = []
    for index, namespace in enumerate(["team-a", "team-a", "team-a", "team-b"]):
        body = world.gateway.add_trigger(
            spec, name=f"t{index}", namespace=namespace, uid=f"uid-{index}", created=CREATED
        )
        entries.append(world.cache.upsert_trigger(body))
    other = world.gateway.add_trigger(
        {**spec, "payload": {"other": True}}, name="t4", uid="uid-4", created=CREATED
    )
    entries.append(world.cache.upsert_trigger(other))

    for entry in entries:
        await world.reconciler.reconcile(entry)

    # team-a's template once, team-b's once, and the other payload once.
    assert world.gateway.calls.count("dry_run_job") == 3
    assert all(
        world.gateway.triggers[(e.namespace, e.name)]["status"]["nextRunAt"] for e in entries
    )


async def test_triggers_of_one_template_checked_at_once_share_one_dry_run(
    world: World,
) -> None:
    entries = _triggers_of(world, {"schedule": "30 2 * * *", "jobTemplate": TEMPLATE}, 8)

    await asyncio.gather(*(world.reconciler.reconcile(entry) for entry in entries))

    # The first asks; the seven checked while its answer was on the way wait for it.
    assert world.gateway.calls.count("dry_run_job") == 1
    assert all(
        world.gateway.triggers[(e.namespace, e.name)]["status"]["nextRunAt"] for e in entries
    )


async def test_a_rejection_in_flight_is_not_shared_each_trigger_asks_for_itself(
    world: World,
) -> None:
    template = {"spec": {"template": {"spec": {"containers": [{"name": "run"}]}}}}
    entries = _triggers_of(world, {"schedule": "30 2 * * *", "jobTemplate": template}, 3)

    await asyncio.gather(*(world.reconciler.reconcile(entry) for entry in entries))

    assert world.gateway.calls.count("dry_run_job") == 3
    for entry in entries:
        (ready,) = world.gateway.triggers[(entry.namespace, entry.name)]["status"]["conditions"]
        assert (ready["status"], ready["reason"]) == ("False", "InvalidJobTemplate")


async def test_a_dry_run_that_fails_in_flight_leaves_its_waiters_to_ask_for_themselves(
    world: World,
) -> None:
    entries = _triggers_of(world, {"schedule": "30 2 * * *", "jobTemplate": TEMPLATE}, 3)
    world.gateway.fail("dry_run_job", ApiUnavailable("connection refused"))

    await asyncio.gather(*(world.reconciler.reconcile(entry) for entry in entries))

    assert world.gateway.calls.count("dry_run_job") == 3
    shown = [
        "nextRunAt" in world.gateway.triggers[(e.namespace, e.name)].get("status", {})
        for e in entries
    ]
    assert shown == [False, True, True]


def _triggers_of(world: World, spec: dict[str, Any], count: int) -> list[TriggerEntry]:
    """`count` triggers of one spec in the default namespace, t0, t1, ..., in the cache."""
    return [
        world.cache.upsert_trigger(
            world.gateway.add_trigger(spec, name=f"t{i}", uid=f"uid-{i}", created=CREATED)
        )
        for i in range(count)
    ]


def _job_at(world: World, instant: datetime) -> dict[str, Any]:
    stamp = format_instant(instant)
    return next(
        b for b in world.jobs() if b["metadata"]["annotations"][ANNOTATION_SCHEDULED_FOR] == stamp
    )


# -- the run of a time is never "another active run" of that time ---------------------------


async def _crash_after_create(world: World, entry: TriggerEntry, scheduled_for: datetime) -> None:
    """A leader created the Job of `scheduled_for` and died before its status patch."""
    spec = TriggerSpec.model_validate(entry.body["spec"])
    await world.reconciler.runs.start(
        world.ref, spec, scheduled_for, RunKind.SCHEDULED, due=scheduled_for
    )
    world.observe(entry)


@pytest.mark.parametrize("policy", ["Forbid", "Replace", "Allow"])
async def test_the_job_of_the_due_time_itself_is_not_an_active_run_to_forbid_or_replace(
    world: World, policy: str
) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy=policy)
    world.at(at(2, 10))
    await _crash_after_create(world, entry, at(2, 10))
    (job,) = world.jobs()

    await world.run(entry)

    assert [b["metadata"]["uid"] for b in world.jobs()] == [job["metadata"]["uid"]]
    assert world.status()["cursor"] == "2026-11-26T02:10:00Z"
    statuses = {row[1] for row in world.ledger.written()}
    assert statuses == {LedgerStatus.PENDING}  # neither skipped nor cancelled
    assert "delete_job" not in world.gateway.calls


# -- a deleted Job stays evidence until its time is behind the cursor -------------------------


async def test_a_job_deleted_before_the_cursor_moved_is_not_run_again_then_released(
    world: World,
) -> None:
    entry, _ = await _created_then_deleted(world)  # by a TTL, or a person
    assert [b["metadata"]["deletionTimestamp"] for b in world.jobs()]  # held

    world.ledger.sink.available.clear()
    again = await world.run(entry)
    assert again == at(2, 10, 2)
    assert world.jobs()  # unfinished and deleted: held until its cancelled row is in
    world.ledger.sink.available.set()
    assert (world.key(at(2, 10)), LedgerStatus.CANCELLED, "JobDeleted") in world.ledger.written()
    world.at(again)
    await world.run(entry)

    assert world.gateway.calls.count("create_job") == 1
    assert world.status()["cursor"] == "2026-11-26T02:10:00Z"
    assert world.jobs() == []  # released once status said the time was handled
    assert "release_job" in world.gateway.calls


async def test_a_job_that_completes_as_it_is_deleted_by_hand_goes_with_its_run_succeeded(
    world: World,
) -> None:
    # Someone deletes a running Job; its pod completes just as the pass that recorded the
    # run cancelled releases it. The release names the version it decided on, so the
    # Job, changed meanwhile, stays until its outcome is the committed row (before, it
    # went with `cancelled` for a run that ran to the end).
    entry, name = await _created_then_deleted(world)

    def completes() -> None:
        world.gateway.set_job_status(NAMESPACE, name, _complete(at(2, 10, 1)))

    world.gateway.before("release_job", completes, once=True)
    again = await world.run(entry)
    assert again is not None and again <= at(2, 10, 2)
    assert (world.key(at(2, 10)), LedgerStatus.CANCELLED, "JobDeleted") in world.ledger.written()
    assert [b["metadata"]["name"] for b in world.jobs()] == [name]  # held for its row

    for _ in range(3):  # the pass repeats while the outcome is on its way to the ledger
        assert again is not None
        world.at(again)
        again = await world.run(entry)
        world.ledger.written()
        if not world.jobs():
            break
    assert world.jobs() == []
    rows = [row for row in world.ledger.written() if row[0] == world.key(at(2, 10))]
    assert rows[-1][1] is LedgerStatus.SUCCEEDED
    assert world.ledger.writer.settled(world.key(at(2, 10)), LedgerStatus.SUCCEEDED)


def _complete(when: datetime) -> dict[str, Any]:
    return {
        "succeeded": 1,
        "completionTime": format_instant(when),
        "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": format_instant(when)}
        ],
    }


async def _created_then_deleted(world: World) -> tuple[TriggerEntry, str]:
    """The Job of 02:10 created, its leader gone before the cursor moved, then the Job
    deleted (its finalizer holds it); returns the trigger and the Job's name."""
    entry = world.trigger(schedule="*/10 * * * *")
    world.at(at(2, 10))
    await _crash_after_create(world, entry, at(2, 10))
    (job,) = world.jobs()
    name = str(job["metadata"]["name"])
    world.gateway.remove_job(NAMESPACE, name)
    world.observe(entry)
    return entry, name


@pytest.mark.parametrize(
    ("status", "run_now", "current", "expected"),
    [
        ({"cursor": "2026-11-26T02:10:00Z"}, None, None, True),
        ({"cursor": "2026-11-26T02:00:00Z"}, None, None, False),  # a crash left it ahead
        ({}, None, None, False),
        ({"cursor": "2026-11-26T02:00:00Z", "specEpoch": "2026-11-26T02:15:00Z"}, None, None, True),
        ({"runNow": [{"value": "v", "handledAt": "2026-11-26T02:11:00Z"}]}, "v", "v", True),
        ({}, "v", "v", False),  # created, not yet recorded: the value would start again
        ({}, "v", "w", True),  # the annotation moved on: "v" is never started again
    ],
)
def test_a_deleted_job_may_go_only_once_status_shows_its_run_handled(
    status: dict[str, Any], run_now: str | None, current: str | None, expected: bool
) -> None:
    body = build_job(
        TriggerRef(namespace=NAMESPACE, name=NAME, uid=UID),
        TEMPLATE,
        scheduled_for=at(2, 10),
        kind=RunKind.MANUAL if run_now else RunKind.SCHEDULED,
        writer=LeaderIdentity(identity="pod-a", revision=1),
        run_now_value=run_now,
    )
    job = observe_job(body)

    assert handled(job, TriggerStatus.model_validate(status), current_run_now=current) is expected


# -- refusals, failures, vanished triggers: reported, backed off, never a storm ---------------


async def test_a_job_create_refused_after_validation_is_reported_and_retried_with_back_off(
    world: World,
) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    denied = "admission webhook denied the request: privileged containers are not allowed"
    world.gateway.fail("create_job", Invalid(denied, status=422), times=2)

    first = await world.run(entry)
    early = await world.run(entry)  # an event before the retry time: no new create
    world.at(first or at(0))
    second = await world.run(entry)

    assert first == at(2, 30, 5)
    assert early == first
    assert second == first + timedelta(seconds=10)
    assert world.gateway.calls.count("create_job") == 2
    (ready,) = world.status()["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidJobTemplate")
    assert denied in ready["message"]
    assert [e["reason"] for e in world.gateway.events] == ["InvalidJobTemplate"]
    assert world.metric("trigger_operator_runs_total", result="refused") == 2

    world.at(second or at(0))
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:30:00Z"]
    assert world.status()["conditions"][0]["reason"] == "Scheduled"


async def test_an_unexpected_error_is_reported_once_and_retried_with_growing_back_off(
    world: World,
) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    world.gateway.fail("create_job", KubeError("a bug"), times=3)

    delays = []
    for _ in range(3):
        retry_at = await world.run(entry)
        assert retry_at is not None
        delays.append((retry_at - world.clock.now()).total_seconds())
        world.at(retry_at)

    assert delays == [5, 10, 20]
    (ready,) = world.status()["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "PassFailed")
    assert [e["reason"] for e in world.gateway.events] == ["PassFailed"]
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:30:00Z"]


async def test_a_status_patch_answered_404_ends_the_work_on_that_trigger(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))
    world.gateway.fail("patch_trigger_status", NotFound("gone", status=404))

    assert await world.run(entry) is None


async def test_a_conflict_whose_fresh_read_is_another_trigger_ends_the_work(world: World) -> None:
    entry = world.trigger(schedule="30 2 * * *")
    world.at(at(2, 30))

    def deleted_and_created_again() -> None:
        world.gateway.add_trigger(
            {"jobTemplate": TEMPLATE, "schedule": "0 9 * * *"}, uid="another", created=CREATED
        )

    world.gateway.before("patch_trigger_status", deleted_and_created_again, once=True)

    assert await world.run(entry) is None
    assert entry.body["metadata"]["uid"] == UID  # the new object is not this entry


# -- edits never drop or double times; run-now's rules -----------------------------------------


async def test_an_edit_keeps_its_date_when_the_status_patch_that_records_it_fails(
    world: World,
) -> None:
    entry = world.trigger(schedule="*/10 * * * *")
    world.at(at(2, 10))
    await world.run(entry)
    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda body: body["spec"].update(schedule="*/5 * * * *")
    )
    world.at(at(2, 14))
    world.gateway.fail("patch_trigger_status", ApiUnavailable("etcd leader changed"))
    await world.run(entry)  # the edit is noticed at 02:14; status could not say so
    world.at(at(2, 16))

    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z", "2026-11-26T02:15:00Z"]
    assert world.status()["specEpoch"] == "2026-11-26T02:14:00Z"
    assert world.status().get("missedRuns", 0) == 0


async def test_fixing_a_trigger_invalid_since_creation_fires_no_catch_up(world: World) -> None:
    entry = world.trigger(schedule="*/10 * * * * * *")  # seven fields: invalid
    world.at(at(2, 0, 30))
    await world.run(entry)
    assert world.status()["conditions"][0]["reason"] == "InvalidSchedule"
    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda body: body["spec"].update(schedule="*/10 * * * *")
    )
    world.at(at(2, 45))

    await world.run(entry)

    assert world.jobs() == []  # 02:10 ... 02:40 passed while it could not run
    status = world.status()
    assert status.get("missedRuns", 0) == 0
    assert status["nextRunAt"] == "2026-11-26T02:50:00Z"


async def test_a_time_whose_jittered_dispatch_falls_after_a_resume_still_runs(
    world: World,
) -> None:
    entry = world.trigger(schedule="30 2 * * *", jitterSeconds=600)
    jitter = jitter_for(UID, 600)
    assert jitter > timedelta(seconds=2), "the test needs a jitter to resume within"
    await world.run(entry)
    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda body: body["spec"].update(suspend=True)
    )
    world.at(at(2, 29))
    await world.run(entry)
    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda body: body["spec"].update(suspend=False)
    )
    world.at(at(2, 30) + jitter / 2)  # after 02:30, before its dispatch
    await world.run(entry)
    assert world.jobs() == []

    world.at(at(2, 30) + jitter)
    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:30:00Z"]


async def test_run_now_starts_while_suspended_and_while_forbid_has_an_active_run(
    world: World,
) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Forbid")
    world.at(at(2, 10))
    await world.run(entry)  # 02:10 is running

    def suspend_and_ask(body: dict[str, Any]) -> None:
        body["spec"].update(suspend=True)
        body["metadata"]["annotations"].update({ANNOTATION_RUN_NOW: "by-hand"})

    entry.body = world.gateway.edit_trigger(NAMESPACE, NAME, suspend_and_ask)
    world.at(at(2, 12))

    await world.run(entry)

    manual = [b for b in world.jobs() if b["metadata"]["annotations"].get(ANNOTATION_RUN_NOW)]
    assert len(manual) == 1
    assert len(world.jobs()) == 2


# -- evidence that outlives a crash -------------------------------------------------------


async def test_skipped_and_missed_rows_lost_in_a_crash_are_written_by_the_next_leader(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Forbid", catchUp="Latest")
    world.at(at(2, 10))
    await world.run(entry)  # 02:10 runs, and keeps running
    world.at(at(2, 40, 30))
    # The leader moves the cursor past 02:20 and 02:30 (missed) and 02:40 (skipped), then
    # dies before its ledger writer sends the rows: they never reach the database.
    recorder = world.reconciler.recorder
    monkeypatch.setattr(recorder, "skipped", lambda *args, **kwargs: None)
    monkeypatch.setattr(recorder, "missed", lambda *args, **kwargs: None)
    await world.run(entry)
    assert world.status()["cursor"] == "2026-11-26T02:40:00Z"
    assert not [row for row in world.ledger.written() if row[1] is not LedgerStatus.PENDING]

    successor = RunRecorder(
        ledger=world.ledger.writer, metrics=world.metrics, gate=world.gate, clock=world.clock
    )
    entry.body = world.gateway.triggers[(NAMESPACE, NAME)]
    await successor.reconcile([entry])

    rows = {row[0]: row[1:] for row in world.ledger.written()}
    assert rows[world.key(at(2, 20))] == (LedgerStatus.MISSED, "Missed")
    assert rows[world.key(at(2, 30))] == (LedgerStatus.MISSED, "Missed")
    assert rows[world.key(at(2, 40))] == (LedgerStatus.SKIPPED, "ConcurrencyForbid")
    assert rows[world.key(at(2, 10))] == (LedgerStatus.PENDING, None)


async def test_status_remembers_only_the_newest_times_passed_without_a_run(world: World) -> None:
    entry = world.trigger(schedule="* * * * *", concurrencyPolicy="Forbid")
    world.at(at(2, 1))
    await world.run(entry)
    for minute in range(2, 2 + NOT_STARTED_HISTORY_LIMIT + 5):
        world.at(at(2, minute))
        await world.run(entry)

    remembered = world.status()["notStarted"]
    assert len(remembered) == NOT_STARTED_HISTORY_LIMIT
    assert remembered[-1] == {
        "scheduledFor": format_instant(at(2, 1 + NOT_STARTED_HISTORY_LIMIT + 5)),
        "reason": "ConcurrencyForbid",
        "kind": "scheduled",
    }
    times = [record["scheduledFor"] for record in remembered]
    assert times == sorted(times)


# -- run-now with a payload of its own -------------------------------------------------------


def _payload_env(body: dict[str, Any]) -> str | None:
    env = body["spec"]["template"]["spec"]["containers"][0]["env"]
    return next((e["value"] for e in env if e["name"] == "TRIGGER_PAYLOAD"), None)


async def test_a_run_now_payload_replaces_the_triggers_own_for_that_run_only(
    world: World,
) -> None:
    asked = run_now_payload_annotation("fix-1", {"day": "2026-11-25"})
    entry = world.trigger(
        {ANNOTATION_RUN_NOW: "fix-1", ANNOTATION_RUN_NOW_PAYLOAD: asked},
        schedule="30 2 * * *",
        payload={"day": "today"},
    )
    world.at(at(2, 30))

    await world.run(entry)

    by_kind = {b["metadata"]["annotations"][ANNOTATION_RUN_KIND]: b for b in world.jobs()}
    assert _payload_env(by_kind["manual"]) == '{"day": "2026-11-25"}'
    assert _payload_env(by_kind["scheduled"]) == '{"day": "today"}'
    assert world.gateway.triggers[(NAMESPACE, NAME)]["spec"]["payload"] == {"day": "today"}
    world.ledger.writer.flush(5)
    [manual] = [r for r in world.ledger.sink.runs if r.ref.kind is RunKind.MANUAL]
    assert manual.payload == '{"day": "2026-11-25"}'

    # The next value, set without a payload of its own, gets the trigger's.
    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda b: b["metadata"]["annotations"].update({ANNOTATION_RUN_NOW: "2"})
    )
    await world.run(entry)
    manual_payloads = sorted(
        str(_payload_env(b))
        for b in world.jobs()
        if b["metadata"]["annotations"][ANNOTATION_RUN_KIND] == "manual"
    )
    assert manual_payloads == ['{"day": "2026-11-25"}', '{"day": "today"}']


async def test_a_run_now_whose_payload_cannot_be_used_starts_nothing_and_says_why_once(
    world: World,
) -> None:
    entry = world.trigger(
        {ANNOTATION_RUN_NOW: "bad", ANNOTATION_RUN_NOW_PAYLOAD: '{"value": "bad", "payload": '},
        schedule="30 2 * * *",
    )

    await world.run(entry)
    await world.run(entry)

    assert world.jobs() == []
    [record] = world.status()["runNow"]
    assert record["value"] == "bad" and "not JSON" in record["refused"]
    assert [e["reason"] for e in world.gateway.events] == ["InvalidRunNowPayload"]


# -- suspension after repeated failures ---------------------------------------------------------


def _fail_all(world: World) -> None:
    for body in world.jobs():
        if not body.get("status"):
            world.gateway.set_job_status(
                NAMESPACE, body["metadata"]["name"], failed(world.clock.now())
            )


async def test_two_failed_runs_in_a_row_suspend_the_trigger_until_resumed_without_catch_up(
    world: World,
) -> None:
    entry = world.trigger(
        schedule="*/10 * * * *", failurePolicy={"suspendAfterConsecutiveFailures": 2}
    )
    for minute in (10, 20):
        world.at(at(2, minute))
        await world.run(entry)
        _fail_all(world)
        world.observe(entry)
    world.at(at(2, 21))
    await world.run(entry)
    await world.run(entry)  # a second look reports nothing new

    status = world.status()
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "SuspendedAfterFailures")
    assert status.get("nextRunAt") is None and status["failures"]["consecutive"] == 2
    assert [e["reason"] for e in world.gateway.events] == ["SuspendedAfterFailures"]
    assert world.metric("trigger_operator_failure_suspensions_total") == 1
    assert world.gateway.triggers[(NAMESPACE, NAME)]["spec"]["failurePolicy"] == {
        "suspendAfterConsecutiveFailures": 2
    }

    world.at(at(2, 45))  # 02:30 and 02:40 pass while suspended
    await world.run(entry)
    assert world.status().get("nextRunAt") is None
    assert world.gateway.calls.count("create_job") == 2  # (the first failed one is pruned)

    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda b: b["metadata"]["annotations"].update({ANNOTATION_RESUME: "r1"})
    )
    due = await world.run(entry)

    # The next time, not the ones that passed (or sooner: a pruned Job waiting for the
    # ledger to settle brings the pass back earlier).
    assert world.status()["nextRunAt"] == "2026-11-26T02:50:00Z"
    assert due is not None and due <= at(2, 50)
    assert world.gateway.calls.count("create_job") == 2
    assert world.status()["conditions"][0]["reason"] == "Scheduled"
    assert world.status()["failures"]["consecutive"] == 0
    world.at(at(2, 50))
    await world.run(entry)
    assert world.job_times()[-1] == "2026-11-26T02:50:00Z"


async def test_a_success_between_failures_resets_the_count(world: World) -> None:
    entry = world.trigger(
        schedule="*/10 * * * *", failurePolicy={"suspendAfterConsecutiveFailures": 2}
    )
    world.at(at(2, 10))
    await world.run(entry)
    _fail_all(world)
    world.observe(entry)
    world.at(at(2, 20))
    await world.run(entry)
    [latest] = [b for b in world.jobs() if not b.get("status")]
    world.gateway.set_job_status(
        NAMESPACE,
        latest["metadata"]["name"],
        {
            "succeeded": 1,
            "completionTime": format_instant(at(2, 20, 5)),
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "lastTransitionTime": format_instant(at(2, 20, 5)),
                }
            ],
        },
    )
    world.observe(entry)
    world.at(at(2, 30))
    await world.run(entry)
    _fail_all(world)
    world.observe(entry)
    world.at(at(2, 31))
    await world.run(entry)

    assert world.status()["failures"]["consecutive"] == 1
    assert world.status()["conditions"][0]["reason"] == "Scheduled"


async def test_an_edit_of_the_spec_resumes_a_suspended_trigger(world: World) -> None:
    entry = world.trigger(
        schedule="*/10 * * * *", failurePolicy={"suspendAfterConsecutiveFailures": 1}
    )
    world.at(at(2, 10))
    await world.run(entry)
    _fail_all(world)
    world.observe(entry)
    world.at(at(2, 11))
    await world.run(entry)
    assert world.status()["conditions"][0]["reason"] == "SuspendedAfterFailures"

    entry.body = world.gateway.edit_trigger(
        NAMESPACE, NAME, lambda b: b["spec"].update(payload={"fixed": True})
    )
    world.at(at(2, 25))
    due = await world.run(entry)

    assert due == at(2, 30) and len(world.jobs()) == 1  # 02:20 passed while suspended
    assert world.status()["conditions"][0]["reason"] == "Scheduled"


# -- backfill -------------------------------------------------------------------------------------


def _succeed(world: World, name: str, when: datetime) -> None:
    world.gateway.set_job_status(
        NAMESPACE,
        name,
        {
            "succeeded": 1,
            "completionTime": format_instant(when),
            "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": format_instant(when)}
            ],
        },
    )


def _ask_backfill(world: World, entry: TriggerEntry, ident: str, **fields: Any) -> None:
    request = BackfillRequest(id=ident, **fields)
    entry.body = world.gateway.edit_trigger(
        NAMESPACE,
        NAME,
        lambda b: b["metadata"]["annotations"].update({ANNOTATION_BACKFILL: request.annotation()}),
    )


def _unstarted(world: World, when: datetime) -> RunRef:
    return RunRef.scheduled(
        namespace=NAMESPACE, trigger_name=NAME, trigger_uid=UID, scheduled_for=when
    )


async def test_a_backfill_starts_exactly_the_times_without_a_run_one_at_a_time(
    world: World,
) -> None:
    entry = world.trigger(schedule="0 * * * *")
    world.at(at(2, 10))
    await world.run(entry)  # nothing due since creation at 02:00
    before = [datetime(2026, 11, 25, h, tzinfo=UTC) for h in (20, 21, 22, 23)]
    world.ledger.writer.record_skipped(_unstarted(world, before[1]), reason="ConcurrencyForbid")
    world.ledger.writer.record_missed(_unstarted(world, before[2]), reason="Missed")
    world.ledger.writer.record(
        RunRecord(
            ref=RunRef.scheduled(
                namespace=NAMESPACE,
                trigger_name=NAME,
                trigger_uid=UID,
                scheduled_for=before[3],
                job_name="gone",
            ),
            status=LedgerStatus.SUCCEEDED,
        )
    )

    _ask_backfill(world, entry, "bf-1", start=before[0], end=before[-1], concurrency=1)
    await world.run(entry)

    assert world.job_times() == ["2026-11-25T20:00:00Z"]
    [job] = world.jobs()
    assert job["metadata"]["name"] == scheduled_job_name(world.ref, before[0])
    assert job["metadata"]["annotations"][ANNOTATION_RUN_KIND] == "backfill"
    backfill = world.status()["backfill"]
    assert (backfill["planned"], backfill["left"], backfill["started"]) == (2, 2, 1)
    assert backfill["leftByReason"] == {"AlreadyRan": 1, "Skipped": 1}
    assert backfill["pending"] == ["2026-11-25T22:00:00Z"]
    condition = next(c for c in world.status()["conditions"] if c["type"] == "Backfill")
    assert (condition["status"], condition["reason"]) == ("True", "Running")

    await world.run(entry)  # the first still runs: concurrency 1 starts nothing more
    assert len(world.jobs()) == 1
    _succeed(world, job["metadata"]["name"], at(2, 11))
    world.observe(entry)
    await world.run(entry)
    assert world.job_times() == ["2026-11-25T20:00:00Z", "2026-11-25T22:00:00Z"]
    second = scheduled_job_name(world.ref, before[2])
    _succeed(world, second, at(2, 12))
    world.observe(entry)
    await world.run(entry)

    backfill = world.status()["backfill"]
    assert (backfill["phase"], backfill["succeeded"], backfill["failed"]) == ("Complete", 2, 0)
    condition = next(c for c in world.status()["conditions"] if c["type"] == "Backfill")
    assert (condition["status"], condition["reason"]) == ("False", "Complete")
    assert "started 2 of 2" in condition["message"]
    # The missed time's ledger row is now the backfilled run's (the pass writes it pending;
    # the Job watch, not simulated here, brings its end).
    world.ledger.writer.flush(5)
    rows = world.ledger.sink.scheduled_runs(UID, since=before[0], until=before[-1])
    by_time = {row.scheduled_for: (row.status, row.kind) for row in rows}
    assert by_time[before[2]] == (LedgerStatus.PENDING, RunKind.BACKFILL)
    assert by_time[before[1]] == (LedgerStatus.SKIPPED, RunKind.SCHEDULED)

    # The same range again, under a new id: nothing left to start.
    creates = world.gateway.calls.count("create_job")
    _ask_backfill(world, entry, "bf-2", start=before[0], end=before[-1])
    await world.run(entry)
    assert world.gateway.calls.count("create_job") == creates
    backfill = world.status()["backfill"]
    assert (backfill["id"], backfill["phase"], backfill["planned"]) == ("bf-2", "Complete", 0)


async def test_a_backfill_under_forbid_waits_for_the_active_run(world: World) -> None:
    entry = world.trigger(schedule="0 * * * *", concurrencyPolicy="Forbid")
    world.at(at(3, 0))
    await world.run(entry)  # 03:00 starts and stays active
    _ask_backfill(world, entry, "bf", start=at(0), end=at(1), concurrency=5)

    await world.run(entry)

    assert world.job_times() == ["2026-11-26T03:00:00Z"]
    assert world.status()["backfill"]["pending"] == ["2026-11-26T00:00:00Z", "2026-11-26T01:00:00Z"]
    _succeed(world, scheduled_job_name(world.ref, at(3)), at(3, 1))
    world.observe(entry)
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T00:00:00Z", "2026-11-26T03:00:00Z"]  # one at a time


async def test_an_unusable_backfill_request_is_reported_once(world: World) -> None:
    entry = world.trigger(schedule="0 * * * *")
    entry.body = world.gateway.edit_trigger(
        NAMESPACE,
        NAME,
        lambda b: b["metadata"]["annotations"].update(
            {
                ANNOTATION_BACKFILL: json.dumps(
                    {"id": "bad", "from": "2026-11-26T05:00:00Z", "to": "2026-11-26T01:00:00Z"}
                )
            }
        ),
    )

    await world.run(entry)
    await world.run(entry)

    backfill = world.status()["backfill"]
    assert (backfill["id"], backfill["phase"]) == ("bad", "Invalid")
    assert "before from" in backfill["message"]
    assert [e["reason"] for e in world.gateway.events] == ["InvalidBackfill"]
    assert world.jobs() == []


# -- concurrencyPolicy Queue --------------------------------------------------------------------


async def test_queue_holds_one_time_a_newer_one_supersedes_it_and_it_starts_on_finish(
    world: World,
) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Queue")
    world.at(at(2, 10))
    await world.run(entry)  # 02:10 starts and runs long
    world.at(at(2, 20))
    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    assert world.status()["queued"]["scheduledFor"] == "2026-11-26T02:20:00Z"
    assert world.status()["cursor"] == "2026-11-26T02:20:00Z"

    world.at(at(2, 30))
    await world.run(entry)
    assert world.status()["queued"]["scheduledFor"] == "2026-11-26T02:30:00Z"
    assert (world.key(at(2, 20)), LedgerStatus.SKIPPED, "Superseded") in world.ledger.written()
    # Named in status too, so a crash that loses the queued row leaves its evidence.
    assert {
        "scheduledFor": "2026-11-26T02:20:00Z",
        "reason": "Superseded",
        "kind": "scheduled",
    } in (world.status()["notStarted"])

    _succeed(world, scheduled_job_name(world.ref, at(2, 10)), at(2, 31))
    world.observe(entry)
    world.at(at(2, 31))
    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z", "2026-11-26T02:30:00Z"]
    assert world.status().get("queued") is None
    held = next(
        b for b in world.jobs() if b["metadata"]["name"] == scheduled_job_name(world.ref, at(2, 30))
    )
    assert held["metadata"]["annotations"][ANNOTATION_RUN_KIND] == "scheduled"
    await world.run(entry)  # the held time never starts twice
    assert len(world.jobs()) == 2


async def test_queue_starts_at_once_when_nothing_is_active(world: World) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Queue")
    world.at(at(2, 10))

    await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    assert world.status().get("queued") is None


async def test_a_held_time_whose_job_a_crashed_pass_created_is_not_created_again(
    world: World,
) -> None:
    entry = world.trigger(schedule="*/10 * * * *", concurrencyPolicy="Queue")
    world.at(at(2, 10))
    await world.run(entry)
    world.at(at(2, 20))
    await world.run(entry)  # 02:20 held
    _succeed(world, scheduled_job_name(world.ref, at(2, 10)), at(2, 21))
    world.observe(entry)
    world.gateway.fail("patch_trigger_status", ApiUnavailable("down"))
    world.at(at(2, 21))
    await world.run(entry)  # creates 02:20's Job, then cannot write status
    assert world.status()["queued"]["scheduledFor"] == "2026-11-26T02:20:00Z"

    await world.run(entry)

    assert world.gateway.calls.count("create_job") == 2
    assert world.status().get("queued") is None


async def test_a_new_leader_whose_copy_lags_reads_the_trigger_before_starting_anything(
    world: World,
) -> None:
    # Another leader ran 02:10, moved the cursor and let the Job go; this replica's watch
    # had not caught up when it took the Lease (a process resumed from a pause supersedes
    # within milliseconds). Its copy still shows 02:10 due and no Job.
    entry = world.trigger(schedule="*/10 * * * *")
    lagging = copy.deepcopy(entry.body)
    world.at(at(2, 10))
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    world.gateway.jobs.clear()  # handled, released, gone
    entry.body = lagging
    entry.jobs = {}

    world.gate.set_leading(False)  # lost and taken again: a new term
    world.gate.set_leading(True)
    world.at(at(2, 10, 5))
    again = await world.run(entry)
    assert again == at(2, 10, 5)  # planned again at once, from what the API has
    await world.run(entry)

    assert world.gateway.calls.count("create_job") == 1
    assert world.job_times() == []
    assert world.gateway.calls.count("read_trigger") == 1  # once in the term, not per pass
    world.at(at(2, 20))
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:20:00Z"]
    assert world.gateway.calls.count("read_trigger") == 1


async def test_a_lagging_plan_is_not_taken_for_fresh_when_the_watch_catches_up_during_the_read(
    world: World,
) -> None:
    # As above, but the watch delivers the events of the pause while the read is on the
    # wire (a resumed process does both at once): when the read returns, the entry holds
    # the API's version. The pass planned from the lagging copy all the same, so it must
    # plan again, not start 02:10 a second time.
    entry = world.trigger(schedule="*/10 * * * *")
    lagging = copy.deepcopy(entry.body)
    world.at(at(2, 10))
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    world.gateway.jobs.clear()  # handled, released, gone
    entry.body = lagging
    entry.jobs = {}

    def watch_catches_up() -> None:
        entry.update(copy.deepcopy(world.gateway.triggers[(NAMESPACE, NAME)]))

    world.gateway.before("read_trigger", watch_catches_up, once=True)
    world.gate.set_leading(False)  # lost and taken again: a new term
    world.gate.set_leading(True)
    world.at(at(2, 10, 5))
    assert await world.run(entry) == at(2, 10, 5)  # planned again at once
    await world.run(entry)

    assert world.gateway.calls.count("create_job") == 1
    assert world.job_times() == []
    assert world.status()["nextRunAt"] == "2026-11-26T02:20:00Z"


async def test_a_status_patch_carries_the_version_planned_from_not_one_a_watch_event_brought(
    world: World,
) -> None:
    # Mid-pass, a watch event brings another writer's status (a cursor further on) into
    # the entry. The pass's status, computed from the copy it planned from, must not be
    # written over it: the patch's precondition is the version planned from, so it
    # conflicts, the pass reads again, and the cursor stays where the other writer put it.
    entry = world.trigger(schedule="*/10 * * * *")
    world.at(at(2, 5))
    await world.run(entry)
    world.at(at(2, 10))

    def another_writer_moves_the_cursor() -> None:
        stored = world.gateway.triggers[(NAMESPACE, NAME)]
        stored["status"] = {
            **stored["status"],
            "lastScheduleTime": "2026-11-26T02:20:00Z",
            "nextRunAt": "2026-11-26T02:30:00Z",
        }
        stored["metadata"]["resourceVersion"] = str(
            int(stored["metadata"]["resourceVersion"]) + 100
        )
        entry.update(copy.deepcopy(stored))  # the watch event

    world.gateway.before("create_job", another_writer_moves_the_cursor, once=True)
    again = await world.run(entry)

    assert again == at(2, 10)  # a conflict: read again, plan again at once
    assert world.status()["nextRunAt"] == "2026-11-26T02:30:00Z"
    assert world.status()["lastScheduleTime"] == "2026-11-26T02:20:00Z"


async def test_a_trigger_whose_status_this_term_patched_starts_without_a_read(
    world: World,
) -> None:
    # A status patch carries the copy's resourceVersion as its precondition: once one went
    # through in this term, the copy is the API's and the due time needs no read first
    # (at a burst of a thousand due triggers, a read each was a thousand more calls).
    world.gate.set_leading(False)
    world.gate.set_leading(True)
    entry = world.trigger(schedule="*/10 * * * *")
    world.at(at(2, 5))
    await world.run(entry)  # the first look of the term: nextRunAt written
    assert world.status()["nextRunAt"] == "2026-11-26T02:10:00Z"
    world.at(at(2, 10))
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    assert world.gateway.calls.count("read_trigger") == 0
    # A new term reads again before its first start.
    world.gate.set_leading(False)
    world.gate.set_leading(True)
    world.at(at(2, 20))
    await world.run(entry)
    assert world.gateway.calls.count("read_trigger") == 1


async def test_a_pass_begun_before_a_loss_writes_nothing_in_the_next_term(world: World) -> None:
    # The process pauses mid-pass (after the pass read the trigger), loses the Lease and
    # takes it again on resuming: the pass decided from what it saw before, so it must not
    # create in the new term; the new term's own pass does.
    entry = world.trigger(schedule="*/10 * * * *")
    world.gate.set_leading(False)
    world.gate.set_leading(True)

    def lost_and_taken_again() -> None:
        world.gate.set_leading(False)
        world.gate.set_leading(True)

    world.gateway.before("read_trigger", lost_and_taken_again, once=True)
    world.at(at(2, 10))
    assert await world.run(entry) is None  # stopped mid-pass
    assert world.jobs() == []
    await world.run(entry)
    assert world.job_times() == ["2026-11-26T02:10:00Z"]
