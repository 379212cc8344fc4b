"""What the recorder hands the ledger from Job events, deletions and reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.scheduler.bodies import AT, TRIGGER, UID, entry, job
from tests.unit.scheduler.fakes import FakeGate, MemoryLedger
from trigger_operator.clock import FakeClock
from trigger_operator.jobs.state import ObservedJob, observe_job
from trigger_operator.ledger.records import LedgerStatus
from trigger_operator.metrics import Metrics
from trigger_operator.scheduler.recorder import SETTLE_ASK_AGAIN, RunRecorder

NOW = datetime(2026, 11, 26, 2, 31, tzinfo=UTC)
RUNNING = {"startTime": "2026-11-26T02:30:01Z", "active": 1}
SUCCEEDED = {
    "startTime": "2026-11-26T02:30:01Z",
    "succeeded": 1,
    "conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-26T02:30:09Z"}
    ],
}


class Setup:
    def __init__(self) -> None:
        registry = CollectorRegistry()
        self.clock = FakeClock(NOW)
        self.ledger = MemoryLedger(self.clock, registry)
        self.sink = self.ledger.sink
        self.gate = FakeGate()
        self.recorder = RunRecorder(
            ledger=self.ledger.writer,
            metrics=Metrics.create(registry),
            gate=self.gate,
            clock=self.clock,
        )

    def written(self) -> list[tuple[str, LedgerStatus, str | None]]:
        return self.ledger.written()


def state(status: dict[str, Any] | None = None) -> ObservedJob:
    return observe_job(job(status=status))


@pytest.fixture
def setup() -> Iterator[Setup]:
    made = Setup()
    yield made
    made.ledger.close()


KEY = f"{UID}/2026-11-26T02:30:00Z"


def test_every_job_event_is_recorded_including_jobs_from_before_a_restart(setup: Setup) -> None:
    setup.recorder.job_changed(state(RUNNING), None)  # first sight, after a restart
    setup.recorder.job_changed(state(SUCCEEDED), state(RUNNING))

    assert setup.written() == [
        (KEY, LedgerStatus.RUNNING, None),
        (KEY, LedgerStatus.SUCCEEDED, None),
    ]
    assert setup.sink.runs[0].leader_identity == "pod-a"  # the Job's creator


async def test_a_replica_that_does_not_lead_records_nothing(setup: Setup) -> None:
    setup.gate.leading = False
    setup.recorder.job_changed(state(RUNNING), None)
    setup.recorder.job_deleted(state(RUNNING))
    setup.recorder.trigger_deleted(entry(job(status=RUNNING)))
    await setup.recorder.reconcile([entry(job(status=RUNNING))])

    assert setup.written() == []


def test_an_unfinished_job_deleted_by_someone_else_is_cancelled(setup: Setup) -> None:
    setup.recorder.job_deleted(state(RUNNING))
    setup.recorder.job_deleted(state(SUCCEEDED))  # pruned history: nothing to add

    assert setup.written() == [(KEY, LedgerStatus.CANCELLED, "JobDeleted")]


def test_deleting_a_trigger_cancels_its_unfinished_runs(setup: Setup) -> None:
    setup.recorder.trigger_deleted(entry(job(status=RUNNING)))

    assert setup.written() == [(KEY, LedgerStatus.CANCELLED, "TriggerDeleted")]
    assert setup.sink.runs[0].finished_at == NOW


async def test_reconciling_writes_the_evidence_of_every_trigger_not_being_deleted(
    setup: Setup,
) -> None:
    live = entry(job(status=SUCCEEDED))
    going = entry(job(AT.replace(hour=3), status=RUNNING))
    marked = going.body
    marked["metadata"]["deletionTimestamp"] = "2026-11-26T02:31:00Z"
    going.body = marked

    await setup.recorder.reconcile([live, going])

    assert setup.written() == [(KEY, LedgerStatus.SUCCEEDED, None)]


async def test_what_a_standby_saw_is_written_once_it_leads_even_after_the_job_is_gone(
    setup: Setup,
) -> None:
    setup.gate.leading = False
    setup.recorder.job_changed(state(RUNNING), None)
    setup.recorder.job_changed(state(SUCCEEDED), state(RUNNING))  # then the Job went
    assert setup.written() == []

    setup.gate.leading = True
    await setup.recorder.reconcile([])  # taking over: no trigger or Job left to rebuild from

    assert setup.written() == [
        (KEY, LedgerStatus.RUNNING, None),
        (KEY, LedgerStatus.SUCCEEDED, None),
    ]


def test_a_deleted_job_is_settled_only_once_its_final_row_is_committed(setup: Setup) -> None:
    finished = state(SUCCEEDED)
    setup.sink.available.clear()  # the database is away

    assert not setup.recorder.settle(finished)
    assert not setup.recorder.settle(finished)  # asked again at once: nothing new queued
    assert setup.ledger.writer.depth == 1
    setup.clock.advance(SETTLE_ASK_AGAIN)
    assert not setup.recorder.settle(finished)
    assert setup.ledger.writer.depth == 2  # queued once more, in case the first was dropped

    setup.sink.available.set()
    assert setup.written() == [(KEY, LedgerStatus.SUCCEEDED, None)] * 2
    assert setup.recorder.settle(finished)


def test_an_unfinished_deleted_job_is_settled_as_cancelled_by_whoever_decided(
    setup: Setup,
) -> None:
    running = state(RUNNING)
    setup.recorder.replacing(running)
    setup.recorder.replaced(TRIGGER, running, deleted=True)
    setup.sink.available.clear()
    assert not setup.recorder.settle(running)  # Replace said so: nothing more to queue
    setup.sink.available.set()

    assert setup.written() == [(KEY, LedgerStatus.CANCELLED, "Replaced")]
    assert setup.recorder.settle(running)


def test_no_replica_settles_while_it_does_not_lead(setup: Setup) -> None:
    setup.gate.set_leading(False)

    assert not setup.recorder.settle(state(SUCCEEDED))
    assert setup.written() == []
