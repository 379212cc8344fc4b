"""The writer's queue, batching, retries and drops, against an in-memory sink (no database)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.harness.wait import wait_for
from trigger_operator.clock import FakeClock
from trigger_operator.ledger.records import (
    LeadershipEvent,
    LeadershipRecord,
    LedgerStatus,
    RunRecord,
    RunRef,
)
from trigger_operator.ledger.store import PruneResult
from trigger_operator.ledger.writer import LedgerWriter

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
UID = "11111111-2222-4333-8444-555555555555"

MakeWriter = Callable[..., LedgerWriter]


def ref(n: int) -> RunRef:
    return RunRef.scheduled(
        namespace="team-a",
        trigger_name="nightly",
        trigger_uid=UID,
        scheduled_for=START + timedelta(minutes=n),
        job_name=f"nightly-{n}",
    )


def pending(run: RunRef, *, leader: str, revision: int) -> RunRecord:
    """The record of a Job (about to be) created for `run` by `leader`."""
    return RunRecord(
        ref=run, status=LedgerStatus.PENDING, leader_identity=leader, leader_revision=revision
    )


def down() -> OperationalError:
    return OperationalError("INSERT ...", {}, ConnectionRefusedError("connection refused"))


class FakeSink:
    """Records what the writer hands over; can fail, reject, or hold a write."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[RunRecord | LeadershipRecord]] = []
        self.failures_left = 0
        self.migrate_failures_left = 0
        self.migrated = False
        self.reject_keys: set[str] = set()
        self.prunes: list[datetime] = []
        self.hold = threading.Event()
        self.hold.set()
        self.writing = threading.Event()
        self.closed = False

    def write(self, runs: Sequence[RunRecord], leadership: Sequence[LeadershipRecord] = ()) -> None:
        self.writing.set()
        self.hold.wait()
        with self.lock:
            if self.failures_left:
                self.failures_left -= 1
                raise down()
            if any(r.ref.key in self.reject_keys for r in runs):
                raise IntegrityError("INSERT ...", {}, ValueError("value too long"))
            self.batches.append([*runs, *leadership])

    def prune(self, *, older_than: datetime) -> PruneResult:
        self.prunes.append(older_than)
        return PruneResult(runs=0, leadership_changes=0)

    def migrate(self) -> None:
        if self.migrate_failures_left:
            self.migrate_failures_left -= 1
            raise down()
        self.migrated = True

    def close(self) -> None:
        self.closed = True

    def written(self) -> list[RunRecord | LeadershipRecord]:
        with self.lock:
            return [record for batch in self.batches for record in batch]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def make_writer(
    sink: FakeSink, clock: FakeClock, registry: CollectorRegistry
) -> Iterator[MakeWriter]:
    writers: list[LedgerWriter] = []

    def build(**kwargs: Any) -> LedgerWriter:
        options: dict[str, Any] = {"retry_initial": 0.01, "retry_max": 0.05, "idle_wakeup": 0.02}
        options.update(kwargs)
        writer = LedgerWriter(sink, clock=clock, registry=registry, **options)
        writers.append(writer)
        return writer

    yield build
    for writer in writers:
        writer.stop(1.0)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def dropped(registry: CollectorRegistry, reason: str) -> float:
    return metric(registry, "trigger_operator_ledger_dropped_writes_total", reason=reason)


def test_records_queue_without_a_running_writer_and_are_stamped_by_the_clock(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    writer = make_writer()
    assert writer.record(pending(ref(1), leader="pod-a", revision=3))
    assert writer.depth == 1
    assert metric(registry, "trigger_operator_ledger_queue_depth") == 1
    writer.start()
    assert writer.flush(5)
    [written] = sink.written()
    assert isinstance(written, RunRecord)
    assert written.observed_at == START
    assert written.leader_identity == "pod-a" and written.leader_revision == 3
    assert metric(registry, "trigger_operator_ledger_queue_depth") == 0


def test_a_full_queue_drops_the_oldest_records_and_counts_them(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    writer = make_writer(queue_size=5)
    for n in range(8):
        assert writer.record(pending(ref(n), leader="a", revision=1))
    assert writer.depth == 5
    assert dropped(registry, "queue_full") == 3
    writer.start()
    assert writer.flush(5)
    assert [r.ref.key for r in sink.written() if isinstance(r, RunRecord)] == [
        ref(n).key for n in range(3, 8)
    ]


def test_queued_records_are_written_in_batches_of_batch_size(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    writer = make_writer(batch_size=100)
    for n in range(1000):
        writer.record(pending(ref(n), leader="a", revision=1))
    writer.start()
    assert writer.flush(10)
    assert [len(batch) for batch in sink.batches] == [100] * 10
    assert metric(registry, "trigger_operator_ledger_batches_total") == 10
    assert metric(registry, "trigger_operator_ledger_written_records_total") == 1000


def test_a_failed_batch_is_retried_until_it_lands_once(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    sink.failures_left = 3
    writer = make_writer()
    writer.start()
    for n in range(10):
        writer.record(
            RunRecord(
                ref=ref(n),
                status=LedgerStatus.SUCCEEDED,
                started_at=START,
                finished_at=START,
                attempts=1,
            )
        )
    assert writer.flush(5)
    assert sorted(r.ref.key for r in sink.written() if isinstance(r, RunRecord)) == sorted(
        ref(n).key for n in range(10)
    )
    assert metric(registry, "trigger_operator_ledger_write_failures_total") == 3
    assert dropped(registry, "queue_full") == 0


def test_recovery_listeners_hear_once_when_writes_succeed_again_after_failures(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    heard: list[int] = []
    writer = make_writer()
    writer.add_recovery_listener(lambda: heard.append(len(sink.written())))
    writer.start()
    writer.record(pending(ref(0), leader="a", revision=1))
    assert writer.flush(5)
    assert heard == []  # no outage, nothing to recover from

    sink.failures_left = 3
    writer.record(pending(ref(1), leader="a", revision=1))
    assert writer.flush(5)
    wait_for(lambda: heard, timeout=5, message="the recovery listener")
    assert heard == [2]  # told right after the first write that landed again


def test_a_migration_that_succeeds_after_failures_counts_as_a_recovery(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    sink.migrate_failures_left = 2
    heard: list[bool] = []
    writer = make_writer(migrate=True)
    writer.add_recovery_listener(lambda: heard.append(sink.migrated))
    writer.start()
    wait_for(lambda: heard, timeout=5, message="the recovery listener")
    assert heard == [True]


def test_a_failing_recovery_listener_does_not_stop_the_writer(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    def broken() -> None:
        raise RuntimeError("listener bug")

    sink.failures_left = 1
    writer = make_writer()
    writer.add_recovery_listener(broken)
    writer.start()
    for n in range(3):
        writer.record(pending(ref(n), leader="a", revision=1))
        assert writer.flush(5)
    assert len(sink.written()) == 3


def test_callers_never_wait_for_a_database_that_is_down(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    sink.failures_left = 10**9
    writer = make_writer(queue_size=100)
    writer.start()
    slowest = 0.0
    for n in range(500):
        began = time.perf_counter()
        writer.record_missed(ref(n), reason="DeadlineExceeded")
        slowest = max(slowest, time.perf_counter() - began)
    assert slowest < 0.05
    assert writer.depth == 100


def test_records_the_database_refuses_are_dropped_alone_and_counted(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    sink.reject_keys = {ref(2).key}
    writer = make_writer()
    for n in range(5):
        writer.record_skipped(ref(n), reason="ConcurrencyForbid")
    writer.start()
    assert writer.flush(5)
    assert [r.ref.key for r in sink.written() if isinstance(r, RunRecord)] == [
        ref(n).key for n in (0, 1, 3, 4)
    ]
    assert dropped(registry, "rejected") == 1
    assert metric(registry, "trigger_operator_ledger_written_records_total") == 4


def test_the_batch_being_written_is_never_dropped_by_a_full_queue(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    sink.hold.clear()
    writer = make_writer(queue_size=4, batch_size=2)
    writer.record(pending(ref(0), leader="a", revision=1))
    writer.record(pending(ref(1), leader="a", revision=1))
    writer.start()
    assert sink.writing.wait(5)  # ref 0 and 1 are in flight
    for n in range(2, 8):
        writer.record(pending(ref(n), leader="a", revision=1))
    sink.hold.set()
    assert writer.flush(5)
    keys = [r.ref.key for r in sink.written() if isinstance(r, RunRecord)]
    assert keys == [ref(n).key for n in (0, 1, 6, 7)]
    assert dropped(registry, "queue_full") == 4


def test_stop_gives_up_after_its_grace_and_reports_what_was_left(
    make_writer: MakeWriter, registry: CollectorRegistry, sink: FakeSink
) -> None:
    sink.failures_left = 10**9
    writer = make_writer()
    writer.start()
    for n in range(3):
        writer.record(pending(ref(n), leader="a", revision=1))
    began = time.monotonic()
    assert writer.stop(0.3) == 3
    assert time.monotonic() - began < 3
    assert not writer.record(pending(ref(9), leader="a", revision=1))
    assert dropped(registry, "closed") == 1


def test_stop_writes_what_is_queued_before_it_returns(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    writer = make_writer(owns_store=True)
    writer.start()
    for n in range(50):
        writer.record(pending(ref(n), leader="a", revision=1))
    assert writer.stop(5) == 0
    assert len(sink.written()) == 50
    assert sink.closed


def test_migration_at_start_is_retried_before_anything_is_written(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    sink.migrate_failures_left = 2
    writer = make_writer(migrate=True)
    writer.record(pending(ref(0), leader="a", revision=1))
    writer.start()
    assert writer.flush(5)
    assert sink.migrated and len(sink.written()) == 1


def test_the_writer_prunes_at_start_and_then_every_interval(
    make_writer: MakeWriter, sink: FakeSink, clock: FakeClock
) -> None:
    writer = make_writer(retention=timedelta(days=90), prune_interval=3600)
    writer.start()
    wait_for(lambda: len(sink.prunes) == 1, timeout=5, message="first prune")
    assert sink.prunes == [START - timedelta(days=90)]
    clock.advance(1800)
    for n in range(2):  # the second batch is taken after a full turn of the loop
        writer.record(pending(ref(n), leader="a", revision=1))
        assert writer.flush(5)
    assert len(sink.prunes) == 1  # not due yet
    clock.advance(1800)
    wait_for(lambda: len(sink.prunes) == 2, timeout=5, message="second prune")
    assert sink.prunes[1] == START + timedelta(hours=1) - timedelta(days=90)


def test_leadership_changes_and_reconciled_runs_go_through_the_same_queue(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    writer = make_writer()
    writer.record_leadership(LeadershipEvent.ACQUIRED, identity="pod-b/r4", revision=4)
    evidence = [RunRecord(ref=ref(n), status=LedgerStatus.SUCCEEDED) for n in range(3)]
    assert writer.reconcile(evidence) == 3
    writer.start()
    assert writer.flush(5)
    written = sink.written()
    changes = [r for r in written if isinstance(r, LeadershipRecord)]
    assert [(c.event, c.identity, c.at) for c in changes] == [
        (LeadershipEvent.ACQUIRED, "pod-b/r4", START)
    ]
    assert len([r for r in written if isinstance(r, RunRecord)]) == 3


def test_at_most_half_the_queue_is_in_flight_so_new_records_always_get_in(
    make_writer: MakeWriter, sink: FakeSink
) -> None:
    sink.hold.clear()
    writer = make_writer(queue_size=4, batch_size=100)
    for n in range(4):
        writer.record(pending(ref(n), leader="a", revision=1))
    writer.start()
    assert sink.writing.wait(5)  # ref 0 and 1 are in flight
    assert all(
        writer.record(RunRecord(ref=ref(n), status=LedgerStatus.SUCCEEDED, attempts=1))
        for n in range(4, 8)
    )  # each pushes out the oldest record that is not in flight
    sink.hold.set()
    assert writer.flush(5)
    assert [r.ref.key for r in sink.written() if isinstance(r, RunRecord)] == [
        ref(n).key for n in (0, 1, 6, 7)
    ]
