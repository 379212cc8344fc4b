"""What the reconciler hands the ledger from Job events, deletions and reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.scheduler.bodies import AT, UID, entry, job
from trigger_operator.clock import FakeClock
from trigger_operator.jobs.builder import Writer
from trigger_operator.jobs.state import RunState, run_state
from trigger_operator.kube.gateway import KubeGateway
from trigger_operator.ledger.records import LeadershipRecord, RunRecord, RunStatus
from trigger_operator.ledger.store import PruneResult
from trigger_operator.ledger.writer import LedgerWriter
from trigger_operator.metrics import Metrics
from trigger_operator.scheduler.reconcile import Reconciler

NOW = datetime(2026, 11, 26, 2, 31, tzinfo=UTC)
RUNNING = {"startTime": "2026-11-26T02:30:01Z", "active": 1}
SUCCEEDED = {
    "startTime": "2026-11-26T02:30:01Z",
    "succeeded": 1,
    "conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-26T02:30:09Z"}
    ],
}


class Sink:
    def __init__(self) -> None:
        self.runs: list[RunRecord] = []

    def write(self, runs: Sequence[RunRecord], leadership: Sequence[LeadershipRecord] = ()) -> None:
        self.runs.extend(runs)

    def prune(self, *, older_than: datetime) -> PruneResult:
        return PruneResult(0, 0)

    def migrate(self) -> None:
        return None

    def close(self) -> None:
        return None


class Gate:
    def __init__(self) -> None:
        self.leading = True

    def may_write(self) -> bool:
        return self.leading

    @property
    def writer(self) -> Writer:
        return Writer(identity="pod-b", revision=4)

    async def wait_until_leader(self) -> None:
        return None

    def changed(self) -> asyncio.Event:
        return asyncio.Event()


class Setup:
    def __init__(self) -> None:
        registry = CollectorRegistry()
        self.sink = Sink()
        self.clock = FakeClock(NOW)
        self.writer = LedgerWriter(self.sink, clock=self.clock, registry=registry)
        self.gate = Gate()
        self.reconciler = Reconciler(
            gateway=_no_gateway(),
            gate=self.gate,
            clock=self.clock,
            metrics=Metrics.create(registry),
            ledger=self.writer,
        )

    def written(self) -> list[tuple[str, RunStatus, str | None]]:
        """(key, status, reason) of every record handed to the ledger, in order."""
        self.writer.start()
        assert self.writer.flush(5)
        self.writer.stop(1)
        return [(r.ref.key, r.status, r.reason) for r in self.sink.runs]


def _no_gateway() -> KubeGateway:
    # These paths never call the API; a gateway that is used fails the test loudly.
    gateway: Any = object()
    return gateway  # type: ignore[no-any-return]


def state(status: dict[str, Any] | None = None) -> RunState:
    return run_state(job(status=status))


@pytest.fixture
def setup() -> Setup:
    return Setup()


KEY = f"{UID}/2026-11-26T02:30:00Z"


def test_every_job_event_is_recorded_including_jobs_from_before_a_restart(setup: Setup) -> None:
    setup.reconciler.job_changed(state(RUNNING), None)  # first sight, after a restart
    setup.reconciler.job_changed(state(SUCCEEDED), state(RUNNING))

    assert setup.written() == [
        (KEY, RunStatus.RUNNING, None),
        (KEY, RunStatus.SUCCEEDED, None),
    ]
    assert setup.sink.runs[0].leader_identity == "pod-a"  # the Job's creator


def test_a_replica_that_does_not_lead_records_nothing(setup: Setup) -> None:
    setup.gate.leading = False
    setup.reconciler.job_changed(state(RUNNING), None)
    setup.reconciler.job_deleted(state(RUNNING))
    setup.reconciler.forget(entry(job(status=RUNNING)))
    setup.reconciler.reconcile_ledger([entry(job(status=RUNNING))])

    assert setup.written() == []


def test_an_unfinished_job_deleted_by_someone_else_is_cancelled(setup: Setup) -> None:
    setup.reconciler.job_deleted(state(RUNNING))
    setup.reconciler.job_deleted(state(SUCCEEDED))  # pruned history: nothing to add

    assert setup.written() == [(KEY, RunStatus.CANCELLED, "JobDeleted")]


def test_deleting_a_trigger_cancels_its_unfinished_runs(setup: Setup) -> None:
    setup.reconciler.forget(entry(job(status=RUNNING)))

    assert setup.written() == [(KEY, RunStatus.CANCELLED, "TriggerDeleted")]
    assert setup.sink.runs[0].finished_at == NOW


def test_reconciling_writes_the_evidence_of_every_trigger_not_being_deleted(
    setup: Setup,
) -> None:
    live = entry(job(status=SUCCEEDED))
    going = entry(job(AT.replace(hour=3), status=RUNNING))
    going.body["metadata"]["deletionTimestamp"] = "2026-11-26T02:31:00Z"

    setup.reconciler.reconcile_ledger([live, going])

    assert setup.written() == [(KEY, RunStatus.SUCCEEDED, None)]
