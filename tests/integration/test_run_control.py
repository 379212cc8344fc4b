"""Run control on the real control plane: the CLI for people, run-now with a payload,
suspension after repeated failures, backfill and the Queue policy.

Each test runs a real operator process and the real command line (as a subprocess, the
way a person runs it) against the dev cluster, and checks what the API server and the
ledger hold. kwok's pods fail when annotated `triggers.dev/simulate-failure` and run
for `triggers.dev/simulate-duration`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.jobs.builder import TriggerRef, scheduled_job_name
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.store import LedgerStore, RunQuery
from trigger_operator.ledger.tables import Run
from trigger_operator.models.instants import format_instant, parse_instant

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]
FAIL = {"triggers.dev/simulate-failure": "true"}


def cli(
    triggers: Triggers, tmp_path: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`trigger-operator ARGS` as a person runs it, on the test's cluster and ledger."""
    result = subprocess.run(
        [sys.executable, "-m", "trigger_operator", *args],
        env={
            **os.environ,
            "KUBECONFIG": str(triggers.cluster.kubeconfig),
            "TRIGGER_OPERATOR_SQLITE_PATH": str(tmp_path / "ledger.db"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def ledger_runs(tmp_path: Path) -> list[Run]:
    """Every run in the operator's ledger (its SQLite file), newest first."""
    store = LedgerStore(build_engine(f"sqlite+pysqlite:///{tmp_path / 'ledger.db'}"))
    try:
        return store.runs(RunQuery(limit=None))
    finally:
        store.close()


def _pod_env(triggers: Triggers, job_name: str) -> dict[str, str]:
    pods = triggers.cluster.core().list_namespaced_pod(
        triggers.namespace, label_selector=f"job-name={job_name}"
    )
    assert pods.items, f"no pod of {job_name}"
    pod: Any = pods.items[0]
    return {str(item.name): str(item.value) for item in pod.spec.containers[0].env or []}


# -- the CLI for people --------------------------------------------------------------------


def test_get_and_describe_show_real_triggers_as_tables_and_json_also_as_a_kubectl_plugin(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    triggers.create(manifest("tick", schedule="*/2 * * * * *", payload={"report": "sales"}))
    triggers.create(manifest("yearly", schedule="0 0 1 1 *", timeZone="Europe/Berlin"))
    operators()
    wait_for(
        lambda: (triggers.status("tick").get("lastRun") or {}).get("result") == "Succeeded",
        timeout=30,
        message="a finished run of tick",
    )
    wait_for(lambda: triggers.status("yearly").get("nextRunAt"), timeout=30, message="planned")

    table = cli(triggers, tmp_path, "get", "-n", triggers.namespace).stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == {"tick", "yearly"}
    assert "Europe/Berlin" in rows["yearly"] and "Scheduled" in rows["yearly"]
    # It runs every two seconds: its last run may be the next one, already started.
    assert rows["tick"].split()[10] in ("Running", "Succeeded")
    assert rows["tick"].count(":") >= 6  # next runs to the second, for a seconds field
    assert "\x1b[" not in "\n".join(table)  # piped: no colour codes

    listed = json.loads(
        cli(triggers, tmp_path, "get", "-n", triggers.namespace, "-o", "json").stdout
    )
    by_name = {item["name"]: item for item in listed}
    assert len(by_name["yearly"]["nextRuns"]) == 3
    assert by_name["yearly"]["nextRuns"][0] == triggers.status("yearly")["nextRunAt"]
    assert by_name["tick"]["lastRun"]["result"] in ("Running", "Succeeded")
    everywhere = json.loads(cli(triggers, tmp_path, "get", "-A", "-o", "json").stdout)
    assert {"tick", "yearly"} <= {
        i["name"] for i in everywhere if i["namespace"] == triggers.namespace
    }

    text = cli(triggers, tmp_path, "describe", "tick", "-n", triggers.namespace).stdout
    assert "Schedule:            */2 * * * * * (UTC)" in text
    assert 'Payload:             {"report": "sales"}' in text
    runs_section = text.split("Last runs (ledger):")[1].split("Conditions:")[0]
    assert "succeeded" in runs_section and "scheduled" in runs_section
    assert "Ready" in text.split("Conditions:")[1]
    doc = json.loads(
        cli(triggers, tmp_path, "describe", "tick", "-n", triggers.namespace, "-o", "json").stdout
    )
    assert doc["ledgerError"] is None
    assert any(run["status"] == "succeeded" for run in doc["lastRuns"])
    assert [c["type"] for c in doc["conditions"]] == ["Ready"]

    # kubectl finds the plugin as `kubectl-strig` on PATH (the console script's name).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "kubectl-strig"
    plugin.write_text(
        f"#!{sys.executable}\nfrom trigger_operator.cli import kubectl_plugin\nkubectl_plugin()\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    env = {
        **os.environ,
        "KUBECONFIG": str(triggers.cluster.kubeconfig),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TRIGGER_OPERATOR_SQLITE_PATH": str(tmp_path / "ledger.db"),
    }
    kubectl = triggers.cluster.kubectl_path
    plugged = subprocess.run(
        [kubectl, "strig", "get", "-n", triggers.namespace],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plugged.returncode == 0, plugged.stderr
    assert plugged.stdout.splitlines()[0].split()[:2] == ["NAME", "SCHEDULE"]
    helped = subprocess.run(
        [kubectl, "strig", "--help"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Usage: kubectl strig" in helped.stdout
    assert all(command in helped.stdout for command in ("run-now", "backfill", "describe"))


# -- run now with a payload ----------------------------------------------------------------


def test_run_now_with_a_payload_reaches_the_pods_environment_and_the_ledger(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    triggers.create(manifest("manual", schedule="0 0 1 1 *", payload={"day": "today"}))
    triggers.create(manifest("broken", schedule="0 0 1 1 *", pod_annotations=FAIL))
    operators()
    wait_for(lambda: triggers.status("manual").get("nextRunAt"), timeout=30, message="planned")

    done = cli(
        triggers,
        tmp_path,
        *("run-now", "manual", "-n", triggers.namespace, "--value", "fix-1"),
        *("--payload", '{"day": "2026-11-25"}', "--wait", "--timeout", "60"),
    )
    job_name, outcome = done.stdout.splitlines()
    assert outcome == f"job/{job_name} succeeded"
    assert _pod_env(triggers, job_name)["TRIGGER_PAYLOAD"] == '{"day": "2026-11-25"}'
    assert triggers.get("manual")["spec"]["payload"] == {"day": "today"}

    # A file, and then no payload: the next run gets the trigger's own.
    payload_file = tmp_path / "payload.json"
    payload_file.write_text('{"day": "2026-11-24"}')
    second = cli(
        triggers,
        tmp_path,
        *("run-now", "manual", "-n", triggers.namespace, "--payload-file", str(payload_file)),
    ).stdout.strip()
    third = cli(triggers, tmp_path, "run-now", "manual", "-n", triggers.namespace, "--value", "3")
    third_job = third.stdout.strip()
    wait_for(lambda: len(triggers.jobs("manual")) == 3, timeout=30, message="three manual runs")
    wait_for(lambda: _pod_env(triggers, third_job), timeout=30, message="the third run's pod")
    assert _pod_env(triggers, second)["TRIGGER_PAYLOAD"] == '{"day": "2026-11-24"}'
    assert _pod_env(triggers, third_job)["TRIGGER_PAYLOAD"] == '{"day": "today"}'

    def recorded() -> dict[str, str | None] | None:
        rows = {str(run.job_name): run.payload for run in ledger_runs(tmp_path)}
        return rows if {job_name, second, third_job} <= set(rows) else None

    rows = wait_for(recorded, timeout=30, message="the manual runs in the ledger")
    assert rows[job_name] == '{"day": "2026-11-25"}'
    assert rows[third_job] == '{"day": "today"}'

    # A failing run: --wait prints it and exits non-zero.
    failed = cli(
        triggers,
        tmp_path,
        *("run-now", "broken", "-n", triggers.namespace, "--wait", "--timeout", "60"),
        check=False,
    )
    assert failed.returncode == 1, failed.stderr
    assert "failed: BackoffLimitExceeded" in failed.stdout.splitlines()[-1]

    # A payload the CLI can see is wrong never reaches the cluster.
    bad = cli(
        triggers,
        tmp_path,
        "run-now",
        "manual",
        "-n",
        triggers.namespace,
        "--payload",
        "{x",
        check=False,
    )
    assert bad.returncode == 2 and "--payload is not JSON" in bad.stderr
    assert len(triggers.jobs("manual")) == 3


# -- suspension after repeated failures ------------------------------------------------------


def _ready_reason(triggers: Triggers, name: str) -> str | None:
    ready = triggers.ready(name)
    return None if ready is None else str(ready["reason"])


def _no_new_jobs_for(triggers: Triggers, name: str, seconds: float) -> None:
    """Nothing starts for `seconds` (three times the schedule's period, here)."""
    before = {job.metadata.name for job in triggers.jobs(name)}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert {job.metadata.name for job in triggers.jobs(name)} == before
        time.sleep(0.5)


def test_repeated_failures_suspend_the_trigger_until_resume_or_a_spec_edit(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    body = manifest(
        "flaky",
        schedule="*/2 * * * * *",
        pod_annotations=FAIL,
        concurrencyPolicy="Forbid",
        failurePolicy={"suspendAfterConsecutiveFailures": 2},
        failedRunsHistoryLimit=10,
    )
    created = triggers.create(body)
    operators()

    wait_for(
        lambda: _ready_reason(triggers, "flaky") == "SuspendedAfterFailures",
        timeout=60,
        message="flaky suspended after two failed runs",
    )
    status = triggers.status("flaky")
    assert status.get("nextRunAt") is None
    assert status["failures"]["consecutive"] >= 2
    assert triggers.ready("flaky")["status"] == "False"  # type: ignore[index]
    assert "suspendAfterConsecutiveFailures" in triggers.ready("flaky")["message"]  # type: ignore[index]
    assert triggers.get("flaky")["spec"] == triggers.get("flaky")["spec"] | created["spec"]
    wait_for(
        lambda: all((job.status.failed or 0) >= 1 for job in triggers.jobs("flaky")),
        timeout=30,
        message="every started run failed",
    )
    _no_new_jobs_for(triggers, "flaky", 6)
    reasons = [event.reason for event in triggers.events("flaky")]
    assert reasons.count("SuspendedAfterFailures") == 1
    described = json.loads(
        cli(triggers, tmp_path, "describe", "flaky", "-n", triggers.namespace, "-o", "json").stdout
    )
    assert described["ready"]["reason"] == "SuspendedAfterFailures"

    # resume: non-retroactive, the next runs are times after it; they fail and suspend again.
    resumed_at = datetime.now(UTC)
    before = {job.metadata.name for job in triggers.jobs("flaky")}
    said = cli(triggers, tmp_path, "resume", "flaky", "-n", triggers.namespace).stdout
    assert said.startswith("resume requested for flaky")
    wait_for(
        lambda: {job.metadata.name for job in triggers.jobs("flaky")} - before,
        timeout=30,
        message="a run after the resume",
    )
    new_times = [
        parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"])
        for job in triggers.jobs("flaky")
        if job.metadata.name not in before
    ]
    assert min(new_times) >= resumed_at.replace(microsecond=0)
    wait_for(
        lambda: (
            _ready_reason(triggers, "flaky") == "SuspendedAfterFailures"
            and [e.reason for e in triggers.events("flaky")].count("SuspendedAfterFailures") == 2
        ),
        timeout=60,
        message="flaky suspended again, reported again",
    )

    # Any edit of the spec resumes: here, the fix (pods no longer fail).
    triggers.patch(
        "flaky",
        {"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": None}}}}}},
    )
    wait_for(
        lambda: (
            _ready_reason(triggers, "flaky") == "Scheduled"
            and (triggers.status("flaky").get("lastRun") or {}).get("result") == "Succeeded"
        ),
        timeout=60,
        message="flaky resumed by the edit, and running again",
    )
    assert triggers.status("flaky")["failures"]["consecutive"] == 0


# -- backfill ----------------------------------------------------------------------------------

TWO_SECONDS = timedelta(seconds=2)
SHORT_LEASE = {
    "lease_duration_seconds": "3",
    "renew_interval_seconds": "1",
    "retry_period_seconds": "1",
}


def _grid(start: datetime, end: datetime) -> list[datetime]:
    """The two-second schedule's times in [start, end]."""
    first = start.replace(microsecond=0)
    if first.second % 2:
        first += timedelta(seconds=1)
    if first < start:
        first += TWO_SECONDS
    times = []
    while first <= end:
        times.append(first)
        first += TWO_SECONDS
    return times


def _jobs_by_time(triggers: Triggers, name: str) -> dict[datetime, list[Any]]:
    found: dict[datetime, list[Any]] = {}
    for job in triggers.jobs(name):
        moment = parse_instant(job.metadata.annotations["triggers.dev/scheduled-for"])
        found.setdefault(moment, []).append(job)
    return found


def _backfill_status(triggers: Triggers, name: str, ident: str) -> dict[str, Any] | None:
    backfill = triggers.status(name).get("backfill") or {}
    return backfill if backfill.get("id") == ident else None


def test_backfill_starts_exactly_the_missing_times_and_a_second_one_starts_none(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    created = triggers.create(
        manifest("tick", schedule="*/2 * * * * *", successfulRunsHistoryLimit=200)
    )
    born = parse_instant(created["metadata"]["creationTimestamp"])
    first = operators(**SHORT_LEASE)
    wait_for(lambda: len(triggers.jobs("tick")) >= 2, timeout=30, message="two runs of tick")
    first.kill()  # down for a while: the times meanwhile are missed (catchUp: Latest)
    down_until = datetime.now(UTC) + timedelta(seconds=7)
    while datetime.now(UTC) < down_until:
        time.sleep(0.5)
    operators("second", **SHORT_LEASE)
    wait_for(
        lambda: triggers.status("tick").get("missedRuns", 0) >= 2,
        timeout=30,
        message="missed times recorded",
    )
    start = born - timedelta(seconds=9)
    end = down_until
    wait_for(
        lambda: (cursor := triggers.status("tick").get("cursor")) and parse_instant(cursor) > end,
        timeout=30,
        message="the scheduler past the range",
    )
    ran_before = {t for t in _jobs_by_time(triggers, "tick") if start <= t <= end}
    expected = [t for t in _grid(start, end) if t not in ran_before]
    assert len(expected) >= 5  # the times before creation, and those missed while down

    window = ("--from", format_instant(start), "--to", format_instant(end))
    dry = cli(
        triggers,
        tmp_path,
        "backfill",
        "tick",
        "-n",
        triggers.namespace,
        *window,
        "--dry-run",
        "-o",
        "json",
    )
    plan = json.loads(dry.stdout)
    assert plan["start"] == [format_instant(t) for t in expected]
    assert {item["reason"] for item in plan["leave"]} == {"AlreadyRan"}
    assert len(plan["leave"]) == len(ran_before)
    text = cli(
        triggers, tmp_path, "backfill", "tick", "-n", triggers.namespace, *window, "--dry-run"
    ).stdout.splitlines()
    assert text[0].startswith(f"would start {len(expected)} and leave {len(ran_before)}")
    assert f"start  {format_instant(expected[0])}" in text

    done = cli(
        triggers,
        tmp_path,
        *("backfill", "tick", "-n", triggers.namespace, *window),
        *("--concurrency", "3", "--id", "repair-1", "--wait", "--timeout", "90"),
    )
    assert "started" in done.stdout and "0 failed" in done.stdout
    backfill = _backfill_status(triggers, "tick", "repair-1")
    assert backfill is not None and backfill["phase"] == "Complete"
    assert (backfill["planned"], backfill["started"]) == (len(expected), len(expected))
    by_time = _jobs_by_time(triggers, "tick")
    duplicates = {format_instant(t): len(jobs) for t, jobs in by_time.items() if len(jobs) > 1}
    assert not duplicates
    uid = created["metadata"]["uid"]
    ref = TriggerRef(namespace=triggers.namespace, name="tick", uid=uid)
    for moment in expected:
        [job] = by_time[moment]
        assert job.metadata.name == scheduled_job_name(ref, moment)
        assert job.metadata.annotations["triggers.dev/run-kind"] == "backfill"
    condition = next(c for c in triggers.status("tick")["conditions"] if c["type"] == "Backfill")
    assert (condition["status"], condition["reason"]) == ("False", "Complete")

    def backfilled_rows() -> list[Run] | None:
        rows = [r for r in ledger_runs(tmp_path) if r.kind.value == "backfill"]
        return (
            rows
            if len(rows) == len(expected) and all(r.status.value == "succeeded" for r in rows)
            else None
        )

    rows = wait_for(backfilled_rows, timeout=30, message="the backfilled runs in the ledger")
    assert sorted(r.scheduled_for for r in rows) == expected

    # The same backfill again: every time has run now, nothing starts.
    in_range = sum(len(jobs) for t, jobs in _jobs_by_time(triggers, "tick").items() if t <= end)
    again = cli(
        triggers,
        tmp_path,
        *("backfill", "tick", "-n", triggers.namespace, *window, "--id", "repair-2"),
        *("--wait", "--timeout", "60"),
    )
    assert "started 0 of 0" in again.stdout
    second = _backfill_status(triggers, "tick", "repair-2")
    assert second is not None
    assert second["leftByReason"] == {"AlreadyRan": len(_grid(start, end))}
    by_time = _jobs_by_time(triggers, "tick")
    assert sum(len(jobs) for t, jobs in by_time.items() if t <= end) == in_range
    assert {t for t in by_time if start <= t <= end} == set(_grid(start, end))


def test_backfill_survives_a_leader_kill_mid_way_without_a_duplicate(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    created = triggers.create(
        manifest(
            "slow",
            schedule="*/2 * * * * *",
            suspend=True,  # only the backfill runs; it is an explicit request
            pod_annotations={"triggers.dev/simulate-duration": "3s"},
            successfulRunsHistoryLimit=50,
        )
    )
    born = parse_instant(created["metadata"]["creationTimestamp"])
    leader = operators("a", **SHORT_LEASE)
    leader.wait_for_log("lease acquired", timeout=30)
    operators("b", **SHORT_LEASE)
    start, end = born - timedelta(seconds=16), born - timedelta(seconds=1)
    expected = _grid(start, end)
    cli(
        triggers,
        tmp_path,
        *("backfill", "slow", "-n", triggers.namespace, "--id", "bf"),
        *("--from", format_instant(start), "--to", format_instant(end)),
    )
    wait_for(
        lambda: (b := _backfill_status(triggers, "slow", "bf")) and b["started"] >= 2,
        timeout=30,
        message="two backfilled runs started",
    )
    leader.kill()

    wait_for(
        lambda: (b := _backfill_status(triggers, "slow", "bf")) and b["phase"] == "Complete",
        timeout=120,
        message="the backfill completed by the next leader",
    )
    by_time = _jobs_by_time(triggers, "slow")
    assert sorted(by_time) == expected
    assert all(len(jobs) == 1 for jobs in by_time.values())
    leaders = {
        job.metadata.annotations["triggers.dev/leader"] for jobs in by_time.values() for job in jobs
    }
    assert leaders == {"a", "b"}
    backfill = _backfill_status(triggers, "slow", "bf")
    assert backfill is not None
    assert (backfill["planned"], backfill["started"], backfill["succeeded"]) == (len(expected),) * 3


# -- concurrencyPolicy Queue -----------------------------------------------------------------


def test_queue_holds_the_newest_due_time_and_starts_it_when_the_long_run_ends(
    triggers: Triggers, operators: Start, tmp_path: Path
) -> None:
    triggers.create(
        manifest(
            "queued",
            schedule="*/2 * * * * *",
            concurrencyPolicy="Queue",
            pod_annotations={"triggers.dev/simulate-duration": "5s"},
            successfulRunsHistoryLimit=50,
        )
    )
    operators()
    held: set[str] = set()
    deadline = time.monotonic() + 16
    while time.monotonic() < deadline:
        status = triggers.status("queued")
        if status.get("queued"):
            held.add(status["queued"]["scheduledFor"])
        running = [job for job in triggers.jobs("queued") if not job.status.completion_time]
        assert len(running) <= 1, f"runs overlap: {[job.metadata.name for job in running]}"
        time.sleep(0.3)
    assert len(held) >= 2  # a time was held, and replaced by a newer one

    # Stop new times; what is held still starts, then nothing is left.
    triggers.patch("queued", {"spec": {"suspend": True}})
    wait_for(
        lambda: (
            not triggers.status("queued").get("queued")
            and not triggers.status("queued").get("active")
            and _ready_reason(triggers, "queued") == "Suspended"
        ),
        timeout=40,
        message="the queue drained",
    )
    started = {
        job.metadata.annotations["triggers.dev/scheduled-for"] for job in triggers.jobs("queued")
    }
    assert len(started) >= 3

    def superseded() -> set[str] | None:
        rows = {
            format_instant(r.scheduled_for)
            for r in ledger_runs(tmp_path)
            if r.status.value == "skipped" and r.reason == "Superseded"
        }
        return rows if rows else None

    replaced = wait_for(superseded, timeout=30, message="superseded times in the ledger")
    assert not replaced & started  # a superseded time never ran
    assert replaced <= held  # only held times are superseded
    # Every time from the first run to the last one is a run or a superseded time.
    first, last = min(started), max(started)
    grid = {format_instant(t) for t in _grid(parse_instant(first), parse_instant(last))}
    assert grid == started | {t for t in replaced if first <= t <= last}
