"""The run ledger on the real control plane: what real runs write, on SQLite and PostgreSQL.

Each test runs a real operator process against the dev cluster with its ledger on a
SQLite file, lets real Jobs run (kwok pods), and reads the rows straight from the database
through `LedgerStore`. One test of each kind of row (a run's life, a time not started, a
cancelled run) runs on the throwaway PostgreSQL server too (`ON_BOTH_BACKENDS`), and the
database outage is PostgreSQL's alone; the ledger tier (`tests/ledger`) covers both
backends in depth.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.postgres import PostgresServer
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import at_head
from trigger_operator.ledger.records import (
    LedgerStatus,
    RunKind,
    manual_run_key,
    scheduled_run_key,
)
from trigger_operator.ledger.store import LedgerStore, RunQuery
from trigger_operator.ledger.tables import Run
from trigger_operator.models.instants import format_instant, parse_instant

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]

FINAL = {
    LedgerStatus.SUCCEEDED,
    LedgerStatus.FAILED,
    LedgerStatus.SKIPPED,
    LedgerStatus.MISSED,
    LedgerStatus.CANCELLED,
}


@dataclass
class Ledger:
    """The test's ledger database, read directly."""

    url: str
    store: LedgerStore

    def runs(self, namespace: str, trigger: str) -> list[Run]:
        """The trigger's rows, oldest first ([] until the operator has migrated: its
        tables exist from the second of the three migrations on, so ask for the head)."""
        if not at_head(self.store.engine):
            return []
        rows = self.store.runs(RunQuery(namespace=namespace, trigger_name=trigger, limit=None))
        return sorted(rows, key=lambda row: (row.scheduled_for, row.key))


@pytest.fixture
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """The ledger database of the test's operators: SQLite, unless parametrized."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        url = f"sqlite+pysqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    store = LedgerStore(build_engine(url))
    yield Ledger(url=url, store=store)
    store.close()


ON_BOTH_BACKENDS = pytest.mark.parametrize(
    "ledger", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def postgres_ledger(postgres_url: str) -> Iterator[Ledger]:
    """A ledger on the throwaway PostgreSQL server alone."""
    store = LedgerStore(build_engine(postgres_url))
    yield Ledger(url=postgres_url, store=store)
    store.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _past(seconds: int) -> str:
    return format_instant((_now() - timedelta(seconds=seconds)).replace(microsecond=0))


def _by_job(triggers: Triggers, name: str) -> dict[str, Any]:
    return {job.metadata.name: job for job in triggers.jobs(name)}


def _assert_one_row_per_run(rows: list[Run]) -> None:
    keys = [row.key for row in rows]
    assert len(keys) == len(set(keys))
    jobs = [row.job_name for row in rows if row.job_name]
    assert len(jobs) == len(set(jobs)), "two rows for one Job"


def _final(ledger: Ledger, namespace: str, name: str, count: int = 1) -> list[Run]:
    """Wait until the trigger has at least `count` rows, all final; return them."""

    def settled() -> list[Run] | None:
        rows = ledger.runs(namespace, name)
        if len(rows) >= count and all(row.status in FINAL for row in rows):
            return rows
        return None

    return wait_for(
        settled,
        timeout=45,
        message=lambda: f"{count} final rows of {name}: {ledger.runs(namespace, name)}",
    )


@ON_BOTH_BACKENDS
def test_a_successful_run_goes_from_running_to_succeeded_with_its_job_and_times(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    run_at = _past(1)
    created = triggers.create(
        manifest("ok", run_at=run_at, pod_annotations={"triggers.dev/simulate-duration": "3s"})
    )
    operators(database_url=ledger.url)

    seen: list[LedgerStatus] = []

    def succeeded() -> Run | None:
        rows = ledger.runs(triggers.namespace, "ok")
        if rows and (not seen or seen[-1] is not rows[0].status):
            seen.append(rows[0].status)
        return rows[0] if rows and rows[0].status is LedgerStatus.SUCCEEDED else None

    row = wait_for(succeeded, timeout=45, interval=0.05, message=lambda: f"succeeded, saw {seen}")

    assert LedgerStatus.RUNNING in seen, seen  # the three-second pod was seen running
    assert seen.index(LedgerStatus.RUNNING) < seen.index(LedgerStatus.SUCCEEDED)
    job = triggers.jobs("ok")[0]
    uid = created["metadata"]["uid"]
    assert row.key == scheduled_run_key(uid, parse_instant(run_at))
    assert (row.namespace, row.trigger_name, row.trigger_uid) == (triggers.namespace, "ok", uid)
    assert row.kind is RunKind.SCHEDULED
    assert (row.job_name, row.job_uid) == (job.metadata.name, job.metadata.uid)
    assert row.attempts == 1
    assert row.started_at is not None and row.finished_at is not None
    assert row.started_at == job.status.start_time
    assert row.finished_at >= row.started_at + timedelta(seconds=2)
    assert (row.leader_identity, row.leader_revision) == ("operator", 0)
    assert row.reason is None
    _assert_one_row_per_run(ledger.runs(triggers.namespace, "ok"))


def test_a_failed_run_records_its_attempts_and_the_job_controller_reason(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    triggers.create(
        manifest(
            "broken",
            run_at=_past(1),
            pod_annotations={"triggers.dev/simulate-failure": "true"},
            job_spec={"backoffLimit": 1},
        )
    )
    operators(database_url=ledger.url)

    [row] = _final(ledger, triggers.namespace, "broken")

    job = triggers.jobs("broken")[0]
    assert row.status is LedgerStatus.FAILED
    assert row.attempts == 2 == job.status.failed  # the first pod, and one retry
    assert row.reason == "BackoffLimitExceeded"
    assert row.message
    assert row.job_uid == job.metadata.uid
    assert row.started_at is not None and row.finished_at is not None
    assert row.finished_at > row.started_at


@ON_BOTH_BACKENDS
def test_forbid_records_each_time_it_skips_while_a_run_is_active(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    triggers.create(
        manifest(
            "forbid",
            schedule="*/2 * * * * *",
            concurrencyPolicy="Forbid",
            pod_annotations={"triggers.dev/simulate-duration": "60s"},
        )
    )
    operators(database_url=ledger.url)

    def two_skipped() -> list[Run] | None:
        rows = ledger.runs(triggers.namespace, "forbid")
        skipped = [row for row in rows if row.status is LedgerStatus.SKIPPED]
        return rows if len(skipped) >= 2 else None

    rows = wait_for(two_skipped, timeout=45, message="two skipped times")

    [job] = triggers.jobs("forbid")
    ran = [row for row in rows if row.job_name]
    assert [row.job_name for row in ran] == [job.metadata.name]
    assert ran[0].status is LedgerStatus.RUNNING and ran[0].started_at is not None
    # Every later time was skipped (a time before the first run may have been missed,
    # when the operator came up after it).
    later = [row for row in rows if row.scheduled_for > ran[0].scheduled_for]
    skipped = [row for row in later if row.status is LedgerStatus.SKIPPED]
    assert skipped == later
    for row in skipped:
        assert row.scheduled_for > ran[0].scheduled_for
        assert row.reason == "ConcurrencyForbid"
        assert row.message == f"active: {job.metadata.name}"
        assert row.job_name is None and row.job_uid is None
        assert row.leader_identity == "operator"
    _assert_one_row_per_run(rows)


def test_replace_records_the_replaced_run_as_cancelled(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    triggers.create(
        manifest(
            "replace",
            schedule="*/3 * * * * *",
            concurrencyPolicy="Replace",
            pod_annotations={"triggers.dev/simulate-duration": "60s"},
        )
    )
    operators(database_url=ledger.url)

    def cancelled() -> list[Run] | None:
        rows = ledger.runs(triggers.namespace, "replace")
        return rows if any(row.status is LedgerStatus.CANCELLED for row in rows) else None

    rows = wait_for(cancelled, timeout=45, message="a cancelled run")

    first = next(row for row in rows if row.job_name)
    assert first.status is LedgerStatus.CANCELLED
    assert first.reason == "Replaced"
    assert first.job_uid is not None
    assert first.finished_at is not None

    # Its Job goes once the pass that replaced it has moved the cursor (the run-record
    # finalizer holds it until then).
    def without_the_replaced() -> dict[str, Any] | None:
        jobs = _by_job(triggers, "replace")
        return jobs if first.job_name not in jobs else None

    live = wait_for(without_the_replaced, timeout=15, message="the replaced Job gone")
    assert first.job_name not in live
    newer = wait_for(
        lambda: [r for r in ledger.runs(triggers.namespace, "replace") if r.job_name in live],
        timeout=15,
        message="the replacing run in the ledger",
    )
    assert {row.status for row in newer} <= {LedgerStatus.PENDING, LedgerStatus.RUNNING}
    _assert_one_row_per_run(ledger.runs(triggers.namespace, "replace"))


@ON_BOTH_BACKENDS
def test_deleting_a_trigger_records_its_unfinished_run_as_cancelled(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    triggers.create(
        manifest(
            "doomed", run_at=_past(1), pod_annotations={"triggers.dev/simulate-duration": "60s"}
        )
    )
    operators(database_url=ledger.url)
    wait_for(
        lambda: [
            r for r in ledger.runs(triggers.namespace, "doomed") if r.status is LedgerStatus.RUNNING
        ],
        timeout=30,
        message="the run running",
    )

    triggers.delete("doomed")
    [row] = _final(ledger, triggers.namespace, "doomed")

    assert row.status is LedgerStatus.CANCELLED
    assert row.reason == "TriggerDeleted"
    assert row.finished_at is not None


def test_run_now_records_a_manual_run_keyed_by_the_annotation_value(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    created = triggers.create(manifest("manual", schedule="0 0 1 1 *"))
    operators(database_url=ledger.url)
    wait_for(lambda: triggers.status("manual").get("nextRunAt"), timeout=30, message="planned")

    asked = _now()
    triggers.patch("manual", {"metadata": {"annotations": {"triggers.dev/run-now": "deploy-42"}}})
    [row] = _final(ledger, triggers.namespace, "manual")

    [job] = triggers.jobs("manual")
    assert row.key == manual_run_key(created["metadata"]["uid"], "deploy-42")
    assert row.kind is RunKind.MANUAL
    assert row.status is LedgerStatus.SUCCEEDED
    assert (row.job_name, row.job_uid) == (job.metadata.name, job.metadata.uid)
    assert abs(row.scheduled_for - asked) < timedelta(seconds=5)  # when it was asked for


def test_times_missed_while_the_operator_was_down_are_rows_and_the_latest_is_caught_up(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    triggers.create(manifest("downtime", schedule="*/2 * * * * *", successfulRunsHistoryLimit=100))
    first = operators("first", database_url=ledger.url)
    wait_for(lambda: ledger.runs(triggers.namespace, "downtime"), timeout=30, message="a run")
    first.stop()
    stopped = parse_instant(triggers.status("downtime")["cursor"])

    # Let at least three due times pass while nobody schedules.
    wait_for(lambda: _now() > stopped + timedelta(seconds=7), timeout=15, message="downtime")
    operators("second", database_url=ledger.url)

    def caught_up() -> list[Run] | None:
        rows = ledger.runs(triggers.namespace, "downtime")
        after = [row for row in rows if row.scheduled_for > stopped]
        kinds = {row.kind for row in after if row.status is not LedgerStatus.MISSED}
        missed = [row for row in after if row.status is LedgerStatus.MISSED]
        return rows if missed and RunKind.CATCH_UP in kinds else None

    rows = wait_for(caught_up, timeout=30, message="missed rows and a catch-up run")

    after = [row for row in rows if row.scheduled_for > stopped]
    missed = [row for row in after if row.status is LedgerStatus.MISSED]
    catch_up = [row for row in after if row.kind is RunKind.CATCH_UP]
    assert len(missed) >= 2
    assert len(catch_up) == 1  # catchUp: Latest
    assert all(row.scheduled_for < catch_up[0].scheduled_for for row in missed)
    for row in missed:
        assert row.reason == "Missed"
        assert row.job_name is None
        assert row.leader_identity == "second"
    assert catch_up[0].job_name in _by_job(triggers, "downtime")
    # Every scheduled time from the first run to the catch-up has exactly one row.
    times = [row.scheduled_for for row in rows if row.scheduled_for <= catch_up[0].scheduled_for]
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(times))
    _assert_one_row_per_run(rows)


def test_a_crash_right_after_the_job_create_still_leaves_one_row_for_the_run(
    ledger: Ledger, triggers: Triggers, operators: Start
) -> None:
    triggers.create(manifest("crashy", schedule="*/2 * * * * *", startingDeadlineSeconds=30))
    # A short lease, so that the survivor need not wait long for the crasher's to expire.
    lease = {"lease_duration_seconds": "3", "renew_interval_seconds": "1"}
    crasher = operators("crasher", crash_at="after-job-create", database_url=ledger.url, **lease)
    assert crasher.wait_exit(timeout=30) == 86
    [job] = triggers.jobs("crashy")
    crashed_for = parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"])

    operators("survivor", database_url=ledger.url, **lease)

    def crashed_run() -> Run | None:
        rows = ledger.runs(triggers.namespace, "crashy")
        row = next((r for r in rows if r.scheduled_for == crashed_for), None)
        return row if row is not None and row.status is LedgerStatus.SUCCEEDED else None

    row = wait_for(crashed_run, timeout=30, message="the crashed time's run, succeeded")
    _final(ledger, triggers.namespace, "crashy", count=3)

    rows = ledger.runs(triggers.namespace, "crashy")
    assert [r.scheduled_for for r in rows].count(crashed_for) == 1
    assert (row.job_name, row.job_uid) == (job.metadata.name, job.metadata.uid)
    assert row.leader_identity == "crasher"  # who created the Job, from its annotations
    assert {r.leader_identity for r in rows if r.scheduled_for > crashed_for} == {"survivor"}
    _assert_one_row_per_run(rows)


def _history(url: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "trigger_operator", "history", *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_database_outage_delays_no_dispatch_and_the_ledger_catches_up_after(
    postgres_server: PostgresServer,
    postgres_ledger: Ledger,
    triggers: Triggers,
    operators: Start,
) -> None:
    ledger, postgres_url = postgres_ledger, postgres_ledger.url
    namespace = triggers.namespace
    triggers.create(manifest("steady", schedule="*/2 * * * * *", successfulRunsHistoryLimit=100))
    # Failed writes are retried at most a second apart, so the ledger catches up at once.
    operator = operators(database_url=postgres_url, ledger_retry_max_seconds="1")
    wait_for(lambda: ledger.runs(namespace, "steady"), timeout=30, message="the ledger works")

    postgres_server.stop()
    down_at = _now()
    try:
        # The outage lasts 30 s by design; the Jobs keep coming meanwhile.
        wait_for(
            lambda: _now() > down_at + timedelta(seconds=30), timeout=40, message="30 s outage"
        )
    finally:
        postgres_server.start()
    up_at = _now()

    window = [
        job
        for job in triggers.jobs("steady")
        if down_at <= parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"]) <= up_at
    ]
    assert len(window) >= 14  # one every 2 s
    for job in window:
        scheduled_for = parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"])
        lateness = job.metadata.creation_timestamp - scheduled_for
        assert timedelta(0) <= lateness <= timedelta(seconds=2), (job.metadata.name, lateness)
    window_times = sorted(
        parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"]) for job in window
    )
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(window_times))

    # The writer retries with back-off, then drains.
    def recorded() -> dict[str, Run] | None:
        rows = {row.job_name: row for row in ledger.runs(namespace, "steady") if row.job_name}
        done = all(
            job.metadata.name in rows and rows[job.metadata.name].status is LedgerStatus.SUCCEEDED
            for job in window
        )
        return rows if done else None

    rows = wait_for(recorded, timeout=30, interval=0.5, message="the window's runs recorded")
    for job in window:
        row = rows[job.metadata.name]
        assert row.job_uid == job.metadata.uid
        assert row.started_at is not None and row.finished_at is not None
        assert row.attempts == 1
        assert row.leader_identity == "operator"
    _assert_one_row_per_run(ledger.runs(namespace, "steady"))
    # Once back, the operator reconciled the ledger with the cluster.
    wait_for(
        lambda: (
            "the database is back" in (logs := operator.logs())
            and logs.rfind("ledger reconciled with the cluster") > logs.find("the database is back")
        ),
        timeout=10,
        message="a reconciliation after the outage",
    )

    # `trigger-operator history` reads the same rows.
    table = _history(postgres_url, "steady", "-n", namespace, "--limit", "0")
    header, *lines = table.strip().splitlines()
    assert header.split()[:3] == ["TRIGGER", "SCHEDULED", "FOR"]
    for job in window:
        line = next(line for line in lines if job.metadata.name in line)
        assert "succeeded" in line.split()
    listed = json.loads(
        _history(postgres_url, "steady", "-n", namespace, "--limit", "0", "-o", "json")
    )
    by_job = {run["job"]: run for run in listed}
    for job in window:
        run = by_job[job.metadata.name]
        assert run["status"] == "succeeded"
        assert run["jobUid"] == job.metadata.uid
        assert run["scheduledFor"] == job.metadata.annotations["triggers.dev/scheduled-for"]
        assert run["kind"] == "scheduled"
        assert run["attempts"] == 1
        assert run["durationSeconds"] is not None
    assert [run["scheduledFor"] for run in listed] == sorted(run["scheduledFor"] for run in listed)
