"""The writer against real databases: batching, start-up, reconcile, and a PostgreSQL outage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.fixtures.postgres import PostgresServer
from tests.harness.wait import wait_for
from tests.ledger.conftest import START, run_ref
from trigger_operator.clock import FakeClock
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import upgrade
from trigger_operator.ledger.records import (
    LeadershipEvent,
    LedgerStatus,
    RunRecord,
    RunRef,
    attempts_for,
)
from trigger_operator.ledger.store import LedgerStore, RunQuery
from trigger_operator.ledger.writer import LedgerWriter, StoreOnFirstUse, open_ledger
from trigger_operator.models.settings import Settings

MakeWriter = Callable[..., LedgerWriter]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + timedelta(hours=1))


@pytest.fixture
def make_writer(
    store: LedgerStore, clock: FakeClock, registry: CollectorRegistry
) -> Iterator[MakeWriter]:
    writers: list[LedgerWriter] = []

    def build(**kwargs: Any) -> LedgerWriter:
        options: dict[str, Any] = {"retry_initial": 0.05, "retry_max": 0.5, "idle_wakeup": 0.05}
        options.update(kwargs)
        writer = LedgerWriter(store, clock=clock, registry=registry, **options)
        writers.append(writer)
        return writer

    yield build
    for writer in writers:
        writer.stop(5)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def pending(ref: RunRef) -> RunRecord:
    """A Job (about to be) created for `ref` by pod-a at revision 2."""
    return RunRecord(
        ref=ref, status=LedgerStatus.PENDING, leader_identity="pod-a", leader_revision=2
    )


def succeeded(ref: RunRef) -> RunRecord:
    """The Job of `ref` succeeded with its first pod."""
    return RunRecord(ref=ref, status=LedgerStatus.SUCCEEDED, attempts=1)


def whole_life(writer: LedgerWriter, ref: RunRef, outcome: LedgerStatus) -> float:
    """Report one run from pending to `outcome`; returns the slowest call, in seconds."""
    started, finished = ref.scheduled_for, ref.scheduled_for + timedelta(seconds=30)
    life = [
        RunRecord(ref=ref, status=LedgerStatus.PENDING, leader_identity="pod-a", leader_revision=2),
        RunRecord(ref=ref, status=LedgerStatus.PENDING, job_uid=f"uid-{ref.job_name}"),
        RunRecord(
            ref=ref,
            status=LedgerStatus.RUNNING,
            started_at=started,
            attempts=attempts_for(LedgerStatus.RUNNING, failed_pods=0),
        ),
        RunRecord(
            ref=ref,
            status=outcome,
            started_at=started,
            finished_at=finished,
            attempts=attempts_for(outcome, failed_pods=1),
        ),
    ]
    slowest = 0.0
    for record in life:
        began = time.perf_counter()
        assert writer.record(record)
        slowest = max(slowest, time.perf_counter() - began)
    return slowest


def outcome_of(n: int) -> LedgerStatus:
    return LedgerStatus.FAILED if n % 4 == 0 else LedgerStatus.SUCCEEDED


def test_queued_lives_of_runs_land_in_batches_with_their_final_status(
    make_writer: MakeWriter, store: LedgerStore, registry: CollectorRegistry
) -> None:
    writer = make_writer(batch_size=200)
    for n in range(250):
        whole_life(writer, run_ref(n), outcome_of(n))
    writer.start()
    assert writer.flush(30)
    assert metric(registry, "trigger_operator_ledger_batches_total") == 5
    assert metric(registry, "trigger_operator_ledger_written_records_total") == 1000
    rows = store.runs(RunQuery(limit=None))
    assert len(rows) == 250
    for row in rows:
        n = int((row.scheduled_for - START).total_seconds() // 60)
        assert row.status is outcome_of(n)
        assert row.job_uid == f"uid-nightly-{n}"
        assert row.attempts == (1 if row.status is LedgerStatus.FAILED else 2)
        assert row.leader_identity == "pod-a"


def test_replayed_records_through_the_writer_leave_one_row_per_run(
    make_writer: MakeWriter, store: LedgerStore
) -> None:
    writer = make_writer()
    writer.start()
    for _ in range(3):
        for n in range(5):
            whole_life(writer, run_ref(n), LedgerStatus.SUCCEEDED)
    assert writer.flush(30)
    assert store.count_runs() == 5
    assert {row.status for row in store.runs(RunQuery(limit=None))} == {LedgerStatus.SUCCEEDED}


def test_reconcile_fills_runs_the_ledger_missed_without_undoing_what_it_knows(
    make_writer: MakeWriter, store: LedgerStore
) -> None:
    writer = make_writer()
    writer.start()
    whole_life(writer, run_ref(0), LedgerStatus.SUCCEEDED)
    writer.record(pending(run_ref(1)))
    assert writer.flush(10)
    evidence = [
        RunRecord(ref=run_ref(0), status=LedgerStatus.RUNNING),  # stale: the ledger knows better
        RunRecord(ref=run_ref(1), status=LedgerStatus.FAILED, reason="BackoffLimitExceeded"),
        RunRecord(ref=run_ref(2), status=LedgerStatus.SUCCEEDED, attempts=1),  # never recorded
    ]
    assert writer.reconcile(evidence) == 3
    assert writer.flush(10)
    statuses = {r.key: r.status for r in store.runs(RunQuery(limit=None))}
    assert statuses == {
        run_ref(0).key: LedgerStatus.SUCCEEDED,
        run_ref(1).key: LedgerStatus.FAILED,
        run_ref(2).key: LedgerStatus.SUCCEEDED,
    }


def test_the_writer_prunes_rows_older_than_the_retention(
    make_writer: MakeWriter, store: LedgerStore, clock: FakeClock
) -> None:
    writer = make_writer(retention=timedelta(days=90))
    writer.record(succeeded(run_ref(0)))
    writer.record_leadership(LeadershipEvent.ACQUIRED, identity="pod-a", revision=1)
    writer.start()
    assert writer.flush(10)
    assert store.count_runs() == 1
    clock.advance(timedelta(days=91).total_seconds())
    wait_for(lambda: store.count_runs() == 0, timeout=10, message="old run pruned")
    assert store.leadership_changes() == []


def test_open_ledger_migrates_a_new_database_and_starts_writing(
    ledger_url: str, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = Settings(database_url=ledger_url, migrate_on_start=True)
    writer = open_ledger(settings, clock=clock, registry=registry)
    try:
        writer.record_missed(run_ref(0), reason="StartingDeadlineExceeded")
        assert writer.flush(30)
        row = writer_store(writer).run(run_ref(0).key)
        assert row is not None and row.status is LedgerStatus.MISSED
    finally:
        assert writer.stop(10) == 0


def test_open_ledger_retries_failed_writes_with_the_back_off_of_the_settings(
    tmp_path: Path, clock: FakeClock, registry: CollectorRegistry
) -> None:
    in_the_way = tmp_path / "ledger.db"
    in_the_way.mkdir()  # SQLite cannot open a directory as its database file
    settings = Settings(
        sqlite_path=str(in_the_way),
        ledger_retry_initial_seconds=0.05,
        ledger_retry_max_seconds=0.1,
    )
    writer = open_ledger(settings, clock=clock, registry=registry)
    try:
        writer.record_missed(run_ref(0), reason="StartingDeadlineExceeded")
        # Eight attempts take about 0.7 s here; with the default back-off (0.5 s doubling
        # up to 30 s) the eighth would come after more than a minute.
        wait_for(
            lambda: metric(registry, "trigger_operator_ledger_write_failures_total") >= 8,
            timeout=5,
            message="eight failed attempts at the settings' back-off",
        )
        in_the_way.rmdir()
        assert writer.flush(5)
        row = writer_store(writer).run(run_ref(0).key)
        assert row is not None and row.status is LedgerStatus.MISSED
    finally:
        assert writer.stop(10) == 0


def writer_store(writer: LedgerWriter) -> LedgerStore:
    store = writer.store
    if isinstance(store, StoreOnFirstUse):  # open_ledger's: built by the writer thread
        store = store.store
    assert isinstance(store, LedgerStore)
    return store


@pytest.mark.postgres
def test_a_postgres_outage_never_blocks_callers_and_every_record_lands_afterwards(
    postgres_server: PostgresServer, postgres_url: str, clock: FakeClock
) -> None:
    engine = build_engine(postgres_url)
    upgrade(engine)
    store = LedgerStore(engine)
    registry = CollectorRegistry()
    writer = LedgerWriter(
        store, clock=clock, registry=registry, retry_initial=0.1, retry_max=0.5, batch_size=50
    )
    writer.start()
    try:
        whole_life(writer, run_ref(0), outcome_of(0))
        assert writer.flush(10)

        postgres_server.stop()
        try:
            slowest = max(whole_life(writer, run_ref(n), outcome_of(n)) for n in range(1, 40))
            # Eight failed retries at 0.1 s doubling up to 0.5 s: the server stays down ~3 s.
            wait_for(
                lambda: metric(registry, "trigger_operator_ledger_write_failures_total") >= 8,
                timeout=30,
                message="the writer retrying against the stopped server",
            )
            slowest = max(
                slowest, *(whole_life(writer, run_ref(n), outcome_of(n)) for n in range(40, 80))
            )
            assert writer.depth == 79 * 4
        finally:
            postgres_server.start()

        assert slowest < 0.05, f"a caller waited {slowest:.3f} s"
        assert writer.flush(60)
        rows = store.runs(RunQuery(limit=None))
        assert len(rows) == 80
        for row in rows:
            n = int((row.scheduled_for - START).total_seconds() // 60)
            assert row.status is outcome_of(n), n
            assert row.job_uid == f"uid-nightly-{n}"
        assert (
            metric(registry, "trigger_operator_ledger_dropped_writes_total", reason="queue_full")
            == 0
        )
    finally:
        writer.stop(10)
        engine.dispose()


@pytest.mark.postgres
def test_during_a_long_outage_the_oldest_records_are_dropped_and_outcomes_still_land(
    postgres_server: PostgresServer, postgres_url: str, clock: FakeClock
) -> None:
    engine = build_engine(postgres_url)
    upgrade(engine)
    store = LedgerStore(engine)
    registry = CollectorRegistry()
    writer = LedgerWriter(
        store, clock=clock, registry=registry, queue_size=10, retry_initial=0.1, retry_max=0.5
    )
    try:
        postgres_server.stop()
        try:
            for n in range(10):
                writer.record(pending(run_ref(n)))
            for n in range(10):
                writer.record(succeeded(run_ref(n)))
            writer.start()
            wait_for(
                lambda: metric(registry, "trigger_operator_ledger_write_failures_total") >= 2,
                timeout=30,
                message="the writer retrying against the stopped server",
            )
        finally:
            postgres_server.start()
        assert writer.flush(60)
        dropped = metric(
            registry, "trigger_operator_ledger_dropped_writes_total", reason="queue_full"
        )
        assert dropped == 10
        rows = store.runs(RunQuery(limit=None))
        assert len(rows) == 10
        assert {row.status for row in rows} == {LedgerStatus.SUCCEEDED}
    finally:
        writer.stop(10)
        engine.dispose()


def test_open_ledger_answers_what_it_holds_of_a_triggers_scheduled_times(
    ledger_url: str, clock: FakeClock, registry: CollectorRegistry
) -> None:
    settings = Settings(database_url=ledger_url, migrate_on_start=True)
    writer = open_ledger(settings, clock=clock, registry=registry)
    try:
        writer.record_missed(run_ref(0), reason="Missed")
        ref = run_ref(0)
        # known_runs waits for what was queued before it: the missed row is there.
        [known] = writer.known_runs(
            ref.trigger_uid, since=ref.scheduled_for, until=ref.scheduled_for, timeout=30
        )
        assert (known.scheduled_for, known.status) == (ref.scheduled_for, LedgerStatus.MISSED)
    finally:
        assert writer.stop(10) == 0
