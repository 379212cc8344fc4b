"""`trigger-operator history` and `migrate` on real data written through the store."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import make_url

from tests.ledger.conftest import START, UID, run_ref
from trigger_operator.cli import main
from trigger_operator.clock import SystemClock
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.records import LedgerStatus, RunKind, RunRecord, RunRef
from trigger_operator.ledger.store import LedgerStore, RunQuery


def history(url: str, *args: str) -> Result:
    env = {"TRIGGER_OPERATOR_DATABASE_URL": url, "KUBECONFIG": "/nonexistent/kubeconfig"}
    return CliRunner().invoke(main, ["history", *args], env=env)


def finished(ref: RunRef, status: LedgerStatus, seconds: int, **fields: Any) -> RunRecord:
    began = ref.scheduled_for + timedelta(seconds=2)
    return RunRecord(
        ref=ref,
        status=status,
        started_at=began,
        finished_at=began + timedelta(seconds=seconds),
        observed_at=began,
        **fields,
    )


@pytest.fixture
def ledger(store: LedgerStore, ledger_url: str) -> str:
    """A ledger with a few days of runs of three triggers in two namespaces."""
    records = [
        finished(run_ref(0), LedgerStatus.SUCCEEDED, 65, attempts=1),
        finished(run_ref(1), LedgerStatus.FAILED, 780, attempts=4, reason="DeadlineExceeded"),
        finished(run_ref(2), LedgerStatus.SUCCEEDED, 42, attempts=1),
        RunRecord(ref=run_ref(3), status=LedgerStatus.MISSED, reason="StartingDeadlineExceeded",
                  observed_at=START),
        finished(run_ref(0, trigger="hourly", uid="hourly-uid"), LedgerStatus.SUCCEEDED, 5),
        finished(
            run_ref(1, trigger="report", namespace="team-b", uid="report-uid"),
            LedgerStatus.SUCCEEDED, 3725,
        ),
        finished(
            RunRef.manual(namespace="team-b", trigger_name="report", trigger_uid="report-uid",
                          run_now_value="deploy-7", requested_at=START + timedelta(minutes=5),
                          job_name="report-manual-deploy-7"),
            LedgerStatus.SUCCEEDED, 9,
        ),
    ]  # fmt: skip
    store.write(records)
    return ledger_url


def lines(result: Result) -> list[str]:
    found = result.stdout.splitlines()
    assert all(line == line.rstrip() for line in found), "no trailing blanks"
    return found


def test_history_of_one_trigger_is_a_table_oldest_first(ledger: str) -> None:
    result = history(ledger, "nightly", "-n", "team-a")
    assert result.exit_code == 0, result.output
    header, *rows = lines(result)
    assert header.split() == [
        "TRIGGER", "SCHEDULED", "FOR", "STATUS", "DURATION", "ATTEMPTS", "JOB", "REASON",
    ]  # fmt: skip
    assert [row.split()[:5] for row in rows] == [
        ["nightly", "2026-11-26T12:00:00Z", "succeeded", "1m05s", "1"],
        ["nightly", "2026-11-26T12:01:00Z", "failed", "13m00s", "4"],
        ["nightly", "2026-11-26T12:02:00Z", "succeeded", "42s", "1"],
        ["nightly", "2026-11-26T12:03:00Z", "missed", "-", "0"],
    ]
    assert rows[1].split()[-2:] == ["nightly-1", "DeadlineExceeded"]
    assert "NAMESPACE" not in header and "KIND" not in header


def test_history_of_every_namespace_shows_namespace_and_kind(ledger: str) -> None:
    result = history(ledger, "-A", "--limit", "3")
    assert result.exit_code == 0, result.output
    header, *rows = lines(result)
    assert header.split()[:2] == ["NAMESPACE", "TRIGGER"]
    assert "KIND" in header.split()
    assert [row.split()[:2] for row in rows] == [
        ["team-a", "nightly"], ["team-a", "nightly"], ["team-b", "report"],
    ]  # fmt: skip
    assert "manual" in rows[-1].split() and "report-manual-deploy-7" in rows[-1]


def test_history_without_a_namespace_uses_the_kubeconfig_namespace(ledger: str) -> None:
    result = history(ledger)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "No runs found in namespace default." in result.stderr


def test_history_as_json_carries_every_field_for_scripts(ledger: str) -> None:
    result = history(ledger, "report", "-n", "team-b", "-o", "json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [(r["kind"], r["scheduledFor"]) for r in runs] == [
        ("scheduled", "2026-11-26T12:01:00Z"),
        ("manual", "2026-11-26T12:05:00Z"),
    ]
    first = runs[0]
    assert first == {
        "namespace": "team-b",
        "trigger": "report",
        "triggerUid": "report-uid",
        "key": "report-uid/2026-11-26T12:01:00Z",
        "scheduledFor": "2026-11-26T12:01:00Z",
        "kind": "scheduled",
        "status": "succeeded",
        "reason": None,
        "message": None,
        "job": "report-1",
        "jobUid": None,
        "attempts": 0,
        "createdAt": "2026-11-26T12:01:02Z",
        "updatedAt": "2026-11-26T12:01:02Z",
        "startedAt": "2026-11-26T12:01:02Z",
        "finishedAt": "2026-11-26T13:03:07Z",
        "durationSeconds": 3725.0,
        "leader": None,
        "revision": None,
        "payload": None,
    }


def test_history_filters_by_status_and_time(ledger: str) -> None:
    result = history(ledger, "-A", "--status", "failed,missed", "-o", "json")
    assert [(r["trigger"], r["status"]) for r in json.loads(result.stdout)] == [
        ("nightly", "failed"), ("nightly", "missed"),
    ]  # fmt: skip
    result = history(ledger, "-n", "team-a", "--since", "2026-11-26T12:02:00Z", "-o", "json")
    assert [r["scheduledFor"] for r in json.loads(result.stdout)] == [
        "2026-11-26T12:02:00Z", "2026-11-26T12:03:00Z",
    ]  # fmt: skip
    result = history(ledger, "-A", "--limit", "0", "-o", "json")
    assert len(json.loads(result.stdout)) == 7


def test_history_refuses_bad_arguments(ledger: str) -> None:
    assert history(ledger, "-A", "-n", "team-a").exit_code == 2
    result = history(ledger, "--status", "exploded")
    assert result.exit_code == 2 and "exploded" in result.output
    result = history(ledger, "--since", "last tuesday")
    assert result.exit_code == 2 and "not a time" in result.output


def test_history_of_an_unmigrated_database_says_to_migrate(ledger_url: str) -> None:
    engine = build_engine(ledger_url)
    with engine.connect():  # the database exists, without tables
        pass
    engine.dispose()
    result = history(ledger_url, "-A")
    assert result.exit_code == 1
    assert "trigger-operator migrate" in result.output


def test_history_of_a_missing_sqlite_file_says_where_it_looked(tmp_path: Path) -> None:
    result = history(f"sqlite:///{tmp_path / 'absent.db'}", "-A")
    assert result.exit_code == 1
    assert "no ledger at" in result.output
    assert not (tmp_path / "absent.db").exists()


def test_migrate_upgrades_a_new_database_once(ledger_url: str) -> None:
    env = {"TRIGGER_OPERATOR_DATABASE_URL": ledger_url}
    first = CliRunner().invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert "migrated from revision none to 0003" in first.stdout
    again = CliRunner().invoke(main, ["migrate"], env=env)
    assert again.exit_code == 0 and "up to date (revision 0003)" in again.stdout


@pytest.mark.postgres
def test_migrate_never_prints_the_database_password(postgres_url: str) -> None:
    with_password = make_url(postgres_url).set(password="s3cret-pw")
    url = with_password.render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["migrate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output and "***" in result.output


def test_prune_deletes_runs_older_than_the_retention(store: LedgerStore, ledger_url: str) -> None:
    now = SystemClock().now()
    old = RunRef.scheduled(
        namespace="team-a", trigger_name="nightly", trigger_uid=UID,
        scheduled_for=now - timedelta(days=100), kind=RunKind.SCHEDULED,
    )  # fmt: skip
    recent = RunRef.scheduled(
        namespace="team-a", trigger_name="nightly", trigger_uid=UID,
        scheduled_for=now - timedelta(days=10),
    )  # fmt: skip
    store.write(
        [RunRecord(ref=r, status=LedgerStatus.SUCCEEDED, observed_at=now) for r in (old, recent)]
    )
    result = history(ledger_url, "--prune")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deleted 1 runs and 0 leadership changes from before ")
    assert [r.key for r in store.runs(RunQuery(limit=None))] == [recent.key]


def test_commands_name_an_unreachable_database_without_its_password() -> None:
    url = "postgresql://ledger:s3cret-pw@127.0.0.1:1/ledger"
    for args in (["migrate", "--database-url", url], ["history", "-A", "--database-url", url]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert "postgresql+psycopg://ledger:***@127.0.0.1:1/ledger" in result.output
        assert "s3cret-pw" not in result.output
        assert "Traceback" not in result.output


def test_a_fractional_scheduled_time_reads_the_same_in_the_row_and_the_history(
    store: LedgerStore, ledger_url: str
) -> None:
    fire = START.replace(microsecond=250_000)
    expected = "2026-11-26T12:00:00.25Z"
    ref = RunRef.scheduled(
        namespace="team-a", trigger_name="once", trigger_uid=UID, scheduled_for=fire
    )
    store.write([RunRecord(ref=ref, status=LedgerStatus.PENDING, observed_at=START)])

    row = store.run(ref.key)
    assert row is not None
    assert row.key == f"{UID}/{expected}"
    assert row.scheduled_for == fire
    result = history(ledger_url, "once", "-n", "team-a", "-o", "json")
    assert result.exit_code == 0, result.output
    assert [run["scheduledFor"] for run in json.loads(result.stdout)] == [expected]
