"""The leadership reporter: one event, from the elector to the metric, the ledger and an Event."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.unit.scheduler.fakes import MemorySink
from trigger_operator.clock import FakeClock
from trigger_operator.handlers.app import leadership_reporter
from trigger_operator.jobs.builder import LeaderIdentity
from trigger_operator.leadership.elector import LeaseSettings
from trigger_operator.ledger.writer import LedgerWriter
from trigger_operator.metrics import Metrics
from trigger_operator.models.leadership import LeadershipEvent

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEASE = LeaseSettings(namespace="trigger-system", name="trigger-operator")
WRITER = LeaderIdentity(identity="pod-a", revision=3)


class Events:
    """Keeps the Events the reporter writes."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    async def emit_event(self, **event: Any) -> None:
        self.written.append(event)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def ledger(sink: MemorySink, registry: CollectorRegistry) -> Iterator[LedgerWriter]:
    writer = LedgerWriter(sink, clock=FakeClock(START), registry=registry, idle_wakeup=0.02)
    writer.start()
    yield writer
    writer.stop(1.0)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("event", "leading", "event_type", "reason", "message"),
    [
        (
            LeadershipEvent.ACQUIRED,
            1.0,
            "Normal",
            "LeaderAcquired",
            "pod-a (revision 3) acquired the scheduling lease (from pod-b)",
        ),
        (
            LeadershipEvent.SUPERSEDED,
            0.0,
            "Warning",
            "LeaderSuperseded",
            "pod-a (revision 3) superseded the scheduling lease (to pod-b)",
        ),
        (
            LeadershipEvent.LOST,
            0.0,
            "Warning",
            "LeaderLost",
            "pod-a (revision 3) lost the scheduling lease (to pod-b)",
        ),
        (
            LeadershipEvent.RELEASED,
            0.0,
            "Normal",
            "LeaderReleased",
            "pod-a (revision 3) released the scheduling lease (to pod-b)",
        ),
    ],
)
async def test_a_leadership_event_is_a_metric_a_ledger_row_and_an_event(
    event: LeadershipEvent,
    leading: float,
    event_type: str,
    reason: str,
    message: str,
    registry: CollectorRegistry,
    ledger: LedgerWriter,
    sink: MemorySink,
) -> None:
    events = Events()
    clock = FakeClock(START)
    report = leadership_reporter(events, LEASE, WRITER, Metrics.create(registry), ledger, clock)

    report(event, "pod-b")
    await asyncio.sleep(0)  # the Event is written by a task of its own
    assert ledger.flush(5)

    assert sample(registry, "trigger_operator_leader") == leading
    assert sample(registry, "trigger_operator_lease_transitions_total", event=event.value) == 1.0
    [change] = sink.changes
    assert (change.event, change.identity, change.revision, change.other_identity) == (
        event,
        "pod-a",
        3,
        "pod-b",
    )
    [written] = events.written
    assert written["namespace"] == LEASE.namespace and written["name"] == LEASE.name
    assert (written["kind"], written["api_version"]) == ("Lease", "coordination.k8s.io/v1")
    assert (written["event_type"], written["reason"], written["message"]) == (
        event_type,
        reason,
        message,
    )
    assert written["now"] == START
