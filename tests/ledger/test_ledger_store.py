"""The store's upserts and queries, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from tests.ledger.conftest import START, UID, run_ref
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import upgrade
from trigger_operator.ledger.records import (
    LeadershipEvent,
    LeadershipRecord,
    LedgerStatus,
    RunKind,
    RunRecord,
    RunRef,
    next_status,
)
from trigger_operator.ledger.store import LedgerStore, RunQuery
from trigger_operator.ledger.tables import LeadershipChange, Run

PAIRS = list(product(LedgerStatus, LedgerStatus))


def row_values(row: Run) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in Run.__table__.columns}


def rec(ref: RunRef, status: LedgerStatus, minute: int = 0, **fields: Any) -> RunRecord:
    return RunRecord(
        ref=ref, status=status, observed_at=START + timedelta(minutes=minute), **fields
    )


@pytest.mark.parametrize("together", [False, True], ids=["separate", "one-batch"])
def test_every_status_transition_follows_the_forward_only_rule(
    store: LedgerStore, together: bool
) -> None:
    batches: list[list[RunRecord]] = [[], []]
    for n, (first, second) in enumerate(PAIRS):
        batches[0].append(rec(run_ref(n), first, 0))
        batches[1].append(rec(run_ref(n), second, 1))
    if together:
        store.write(batches[0] + batches[1])
    else:
        store.write(batches[0])
        store.write(batches[1])
    for n, (first, second) in enumerate(PAIRS):
        row = store.run(run_ref(n).key)
        assert row is not None
        assert row.status is next_status(first, second), (first, second)
    assert store.count_runs() == len(PAIRS)


def test_a_run_collects_its_life_from_pending_to_succeeded(store: LedgerStore) -> None:
    ref = run_ref()
    started, finished = START + timedelta(seconds=5), START + timedelta(seconds=65)
    store.write([rec(ref, LedgerStatus.PENDING, 0, leader_identity="pod-a", leader_revision=3)])
    store.write([rec(ref, LedgerStatus.PENDING, 0, job_uid="job-uid-1")])
    store.write([rec(ref, LedgerStatus.RUNNING, 1, started_at=started, attempts=1)])
    store.write(
        [rec(ref, LedgerStatus.SUCCEEDED, 2, started_at=started, finished_at=finished, attempts=2)]
    )
    row = store.run(ref.key)
    assert row is not None
    assert (row.namespace, row.trigger_name, row.trigger_uid) == ("team-a", "nightly", UID)
    assert row.scheduled_for == START and row.scheduled_for.tzinfo is not None
    assert row.kind is RunKind.SCHEDULED
    assert (row.job_name, row.job_uid) == ("nightly-0", "job-uid-1")
    assert row.status is LedgerStatus.SUCCEEDED
    assert (row.started_at, row.finished_at) == (started, finished)
    assert row.attempts == 2
    assert (row.leader_identity, row.leader_revision) == ("pod-a", 3)
    assert row.created_at == START
    assert row.updated_at == START + timedelta(minutes=2)


def test_replaying_the_same_records_leaves_one_identical_row(store: LedgerStore) -> None:
    ref = run_ref()
    life = [
        rec(ref, LedgerStatus.PENDING, 0, leader_identity="pod-a", leader_revision=1),
        rec(ref, LedgerStatus.RUNNING, 1, started_at=START, attempts=1),
        rec(
            ref,
            LedgerStatus.FAILED,
            2,
            finished_at=START,
            attempts=4,
            reason="BackoffLimitExceeded",
        ),
    ]
    store.write(life)
    first = store.run(ref.key)
    store.write(life)
    store.write(life + life)
    for record in life:
        store.write([record])
    again = store.run(ref.key)
    assert store.count_runs() == 1
    assert first is not None and again is not None
    assert row_values(first) == row_values(again)


def test_an_outcome_that_arrives_before_its_pending_keeps_the_outcome(store: LedgerStore) -> None:
    ref = run_ref()
    store.write([rec(ref, LedgerStatus.SUCCEEDED, 2, finished_at=START, attempts=1)])
    store.write([rec(ref, LedgerStatus.PENDING, 0, leader_identity="pod-a", leader_revision=7)])
    row = store.run(ref.key)
    assert row is not None
    assert row.status is LedgerStatus.SUCCEEDED
    assert (row.leader_identity, row.leader_revision) == ("pod-a", 7)  # gaps still filled
    assert row.updated_at == START + timedelta(minutes=2)  # never moves back


def test_reason_and_message_change_only_with_an_accepted_status(store: LedgerStore) -> None:
    ref = run_ref()
    store.write([rec(ref, LedgerStatus.CANCELLED, 0, reason="Replaced", message="by a newer run")])
    store.write([rec(ref, LedgerStatus.FAILED, 1, reason="DeadlineExceeded", message="timed out")])
    row = store.run(ref.key)
    assert row is not None
    assert (row.status, row.reason, row.message) == (
        LedgerStatus.CANCELLED, "Replaced", "by a newer run",
    )  # fmt: skip


def test_attempts_never_decrease(store: LedgerStore) -> None:
    ref = run_ref()
    store.write([rec(ref, LedgerStatus.RUNNING, 0, attempts=3)])
    store.write([rec(ref, LedgerStatus.RUNNING, 1, attempts=1)])
    row = store.run(ref.key)
    assert row is not None and row.attempts == 3


def test_long_reasons_are_cut_to_the_column(store: LedgerStore) -> None:
    ref = run_ref()
    store.write([rec(ref, LedgerStatus.MISSED, 0, reason="R" * 500)])
    row = store.run(ref.key)
    assert row is not None and row.reason == "R" * 128


def test_a_naive_datetime_is_refused_not_guessed(store: LedgerStore) -> None:
    with pytest.raises(StatementError, match="naive"):
        store.prune(older_than=START.replace(tzinfo=None))


def test_leadership_changes_are_appended_and_a_replay_adds_nothing(store: LedgerStore) -> None:
    changes = [
        LeadershipRecord(event=LeadershipEvent.ACQUIRED, identity="pod-a", revision=3, at=START),
        LeadershipRecord(
            event=LeadershipEvent.SUPERSEDED,
            identity="pod-a",
            revision=3,
            at=START + timedelta(minutes=5),
            other_identity="pod-b",
        ),
        LeadershipRecord(
            event=LeadershipEvent.ACQUIRED,
            identity="pod-b",
            revision=4,
            at=START + timedelta(minutes=5),
            other_identity="pod-a",
        ),
    ]
    store.write([], changes)
    store.write([], changes)
    found = store.leadership_changes()
    assert [(c.event, c.identity, c.revision, c.other_identity) for c in found] == [
        (LeadershipEvent.ACQUIRED, "pod-b", 4, "pod-a"),
        (LeadershipEvent.SUPERSEDED, "pod-a", 3, "pod-b"),
        (LeadershipEvent.ACQUIRED, "pod-a", 3, None),
    ]
    with store.engine.connect() as connection:
        assert len(connection.execute(select(LeadershipChange.id)).all()) == 3


def test_queries_filter_by_trigger_status_and_time_newest_first(store: LedgerStore) -> None:
    records = []
    for n in range(10):
        status = LedgerStatus.FAILED if n % 3 == 0 else LedgerStatus.SUCCEEDED
        records.append(rec(run_ref(n), status))
        records.append(rec(run_ref(n, trigger="hourly", uid="hourly-uid"), LedgerStatus.SUCCEEDED))
        records.append(rec(run_ref(n, namespace="team-b", uid="other-uid"), LedgerStatus.MISSED))
    store.write(records)

    latest = store.runs(RunQuery(namespace="team-a", trigger_name="nightly", limit=3))
    assert [r.scheduled_for for r in latest] == [START + timedelta(minutes=n) for n in (9, 8, 7)]

    failed = store.runs(RunQuery(statuses=frozenset({LedgerStatus.FAILED}), limit=None))
    assert sorted(r.scheduled_for.minute for r in failed) == [0, 3, 6, 9]

    window = store.runs(
        RunQuery(
            namespace="team-a",
            since=START + timedelta(minutes=4),
            until=START + timedelta(minutes=6),
            limit=None,
        )
    )
    assert {(r.trigger_name, r.scheduled_for.minute) for r in window} == {
        ("nightly", 4), ("nightly", 5), ("hourly", 4), ("hourly", 5),
    }  # fmt: skip

    everywhere = store.runs(RunQuery(trigger_name="nightly", limit=None))
    assert {r.namespace for r in everywhere} == {"team-a", "team-b"}


def test_prune_deletes_only_what_is_older_than_the_cutoff(store: LedgerStore) -> None:
    store.write(
        [rec(run_ref(n), LedgerStatus.SUCCEEDED) for n in range(5)],
        [
            LeadershipRecord(event=LeadershipEvent.ACQUIRED, identity="a", revision=1, at=START),
            LeadershipRecord(
                event=LeadershipEvent.RELEASED,
                identity="a",
                revision=1,
                at=START + timedelta(minutes=10),
            ),
        ],
    )
    result = store.prune(older_than=START + timedelta(minutes=2))
    assert (result.runs, result.leadership_changes) == (2, 1)
    remaining = store.runs(RunQuery(limit=None))
    assert sorted(r.scheduled_for.minute for r in remaining) == [2, 3, 4]
    assert [c.event for c in store.leadership_changes()] == [LeadershipEvent.RELEASED]


def test_manual_runs_are_keyed_by_their_run_now_value(store: LedgerStore) -> None:
    def manual(value: str) -> RunRef:
        return RunRef.manual(
            namespace="team-a",
            trigger_name="nightly",
            trigger_uid=UID,
            run_now_value=value,
            requested_at=START,
            job_name="nightly-manual",
        )

    store.write([rec(manual("deploy-42"), LedgerStatus.PENDING)])
    store.write([rec(manual("deploy-42"), LedgerStatus.RUNNING, 1)])
    store.write([rec(manual("x" * 1000), LedgerStatus.PENDING)])
    rows = store.runs(RunQuery(limit=None))
    assert sorted((r.kind, r.status) for r in rows) == [
        (RunKind.MANUAL, LedgerStatus.PENDING), (RunKind.MANUAL, LedgerStatus.RUNNING),
    ]  # fmt: skip


def test_a_run_that_completed_as_it_was_replaced_ends_succeeded_without_the_reason(
    store: LedgerStore,
) -> None:
    ref = run_ref()
    store.write([rec(ref, LedgerStatus.CANCELLED, 0, reason="Replaced", message="newer run")])
    store.write([rec(ref, LedgerStatus.SUCCEEDED, 1)])
    store.write([rec(ref, LedgerStatus.CANCELLED, 2, reason="JobDeleted")])  # stays succeeded

    row = store.run(ref.key)
    assert row is not None
    assert (row.status, row.reason, row.message) == (LedgerStatus.SUCCEEDED, None, None)


def test_a_backfilled_run_of_a_missed_time_takes_its_row_over(store: LedgerStore) -> None:
    missed = run_ref()
    backfilled = RunRef.scheduled(
        namespace=missed.namespace,
        trigger_name=missed.trigger_name,
        trigger_uid=missed.trigger_uid,
        scheduled_for=missed.scheduled_for,
        kind=RunKind.BACKFILL,
        job_name="nightly-0",
    )
    store.write([rec(missed, LedgerStatus.MISSED, 0, reason="Missed")])
    store.write([rec(backfilled, LedgerStatus.PENDING, 1, leader_identity="pod-b")])

    row = store.run(missed.key)
    assert row is not None
    assert (row.status, row.kind, row.reason) == (LedgerStatus.PENDING, RunKind.BACKFILL, None)
    store.write([rec(backfilled, LedgerStatus.FAILED, 2, reason="BackoffLimitExceeded")])
    store.write([rec(missed, LedgerStatus.MISSED, 3, reason="Missed")])  # a late replay
    row = store.run(missed.key)
    assert row is not None
    assert (row.status, row.kind, row.reason) == (
        LedgerStatus.FAILED,
        RunKind.BACKFILL,
        "BackoffLimitExceeded",
    )
    assert [
        (known.status, known.kind)
        for known in store.scheduled_runs(UID, since=START, until=START + timedelta(hours=1))
    ] == [(LedgerStatus.FAILED, RunKind.BACKFILL)]


def test_a_backfill_never_takes_over_a_time_that_ran(store: LedgerStore) -> None:
    ran = run_ref()
    store.write([rec(ran, LedgerStatus.SUCCEEDED, 0)])
    again = RunRef.scheduled(
        namespace=ran.namespace,
        trigger_name=ran.trigger_name,
        trigger_uid=ran.trigger_uid,
        scheduled_for=ran.scheduled_for,
        kind=RunKind.BACKFILL,
    )
    store.write([rec(again, LedgerStatus.FAILED, 1)])

    row = store.run(ran.key)
    assert row is not None
    assert (row.status, row.kind) == (LedgerStatus.SUCCEEDED, RunKind.SCHEDULED)


def test_a_sqlite_ledger_loads_no_postgresql_dialect(tmp_path: Path) -> None:
    # The operator writing to SQLite keeps PostgreSQL's modules out of its memory (once
    # the database is at its head: a migration loads Alembic, which loads them all).
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = build_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    code = (
        "import sys\n"
        "from tests.ledger.conftest import START, run_ref\n"
        "from trigger_operator.ledger.engine import build_engine\n"
        "from trigger_operator.ledger.migrate import upgrade\n"
        "from trigger_operator.ledger.records import LedgerStatus, RunRecord\n"
        "from trigger_operator.ledger.store import LedgerStore\n"
        f"engine = build_engine({url!r})\n"
        "upgrade(engine)\n"
        "store = LedgerStore(engine)\n"
        "store.write([RunRecord(ref=run_ref(), status=LedgerStatus.PENDING, observed_at=START)])\n"
        "assert store.count_runs() == 1\n"
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.postgresql')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
