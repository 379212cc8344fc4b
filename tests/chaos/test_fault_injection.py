"""Exactly once under faults: three replicas, one PostgreSQL ledger, faults at random moments.

Three operator processes (revision 1 at first) share one ledger and compete for one Lease
with short timings. While triggers fire, a seeded `FaultInjector` kills the leader or a
standby, stops the leader longer than its Lease, rolls a replica to a higher revision,
hands over by SIGTERM, restarts PostgreSQL, restarts kube-apiserver and compacts etcd
(then restarts it, so that every watch relists). Between faults the workload deletes
running Jobs by hand, sets run-now values (and sets recent ones again) and creates
one-time triggers.

Then, with every replica whole and one stable leader, it waits until every trigger has
handled the end of the fault window, suspends them, lets runs finish and the ledger
settle (bounded), and checks from outside: the Jobs a watch saw (uids, even of deleted
Jobs) and `trigger-operator history -o json` against the shared database.

Slots expected: every time of every cron trigger's grid after its creation and at or
before the end of the fault window; every run-now value set; every one-time trigger. A
slot is accounted for by one Job, or by a `skipped` / `missed` ledger row (what Forbid and
the deadlines legitimately do). Lost: neither. Duplicated: two Job uids for one slot.

Profiles (`CHAOS_PROFILE`): `short` (default, in `make test`) injects five distinct fault
kinds drawn by the seed; `long` (`make chaos`) injects `CHAOS_FAULTS` (default 300) drawn
with `WEIGHTS`. `CHAOS_SEED` replays a
run; the seed is printed either way.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tests.fixtures.postgres import PostgresServer
from tests.harness.cluster import KubeCluster
from tests.harness.faults import FaultInjector, Replicas
from tests.harness.jobwatch import JobRecorder, SeenJob
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.models.instants import format_instant, parse_instant

LEASE_SECONDS = 6.0
TIMINGS = {
    "TRIGGER_OPERATOR_LEASE_DURATION_SECONDS": "6",
    "TRIGGER_OPERATOR_RENEW_INTERVAL_SECONDS": "2",
    "TRIGGER_OPERATOR_RETRY_PERIOD_SECONDS": "1",
}
SETTLE_SECONDS = 30.0
# The bounded time for one stable leader to handle the fault window's backlog (Replace
# catches up by starting and replacing every time in turn), on a loaded machine.
CATCH_UP_SECONDS = 120.0
# The short profile draws this many distinct kinds, so that it fits in `make test`.
SHORT_FAULTS = 5
# The long profile draws kinds with these weights: the slow faults less often.
WEIGHTS = {
    "kill-leader": 3,
    "kill-standby": 2,
    "stop-leader-past-lease": 2,
    "rollout": 2,
    "sigterm-leader": 1,
    "postgres-restart": 1,
    "apiserver-restart": 1,
    "etcd-compaction-relist": 1,
}
FINAL = {"succeeded", "failed", "skipped", "missed", "cancelled"}
ACCOUNTED_WITHOUT_JOB = {"skipped", "missed"}


@dataclass(frozen=True)
class Profile:
    name: str
    faults: int
    gap: tuple[float, float]  # seconds between faults


def _profile() -> Profile:
    name = os.environ.get("CHAOS_PROFILE", "short")
    if name == "long":
        return Profile("long", int(os.environ.get("CHAOS_FAULTS", "300")), (0.5, 3.0))
    if name == "short":
        return Profile("short", SHORT_FAULTS, (1.0, 3.0))
    raise pytest.UsageError(f"CHAOS_PROFILE must be short or long, not {name!r}")


def _time_allowed() -> float:
    """pytest's time-out for the session: pyproject's 300 s fit the short profile; the
    long one takes about 4 s a fault, and gets 10."""
    return max(300.0, 300.0 + 10.0 * _profile().faults)


pytestmark = [pytest.mark.integration, pytest.mark.timeout(_time_allowed())]


# -- the triggers -------------------------------------------------------------------------


@dataclass(frozen=True)
class CronTrigger:
    name: str
    period: int  # seconds; the schedule is */period in the seconds field
    body: dict[str, Any]


def _cron(
    name: str, period: int, *, duration: str, job_spec: dict[str, Any] | None = None, **spec: Any
) -> CronTrigger:
    body = manifest(
        name,
        schedule=f"*/{period} * * * * *",
        pod_annotations={"triggers.dev/simulate-duration": duration},
        job_spec=job_spec,
        catchUp="All",
        maxCatchUpRuns=1000,
        startingDeadlineSeconds=3600,
        **spec,
    )
    return CronTrigger(name, period, body)


CRON_TRIGGERS = (
    # Default history limits: finished Jobs are also pruned (deleted) by the operator.
    _cron("allow", 3, duration="5s", concurrencyPolicy="Allow"),
    _cron(
        "forbid",
        4,
        duration="5s",
        concurrencyPolicy="Forbid",
        successfulRunsHistoryLimit=1000,
        failedRunsHistoryLimit=1000,
    ),
    _cron(
        "replace",
        4,
        duration="6s",
        concurrencyPolicy="Replace",
        successfulRunsHistoryLimit=1000,
        failedRunsHistoryLimit=1000,
    ),
    _cron("ttl", 3, duration="1s", job_spec={"ttlSecondsAfterFinished": 0}),
)
RUN_NOW_TRIGGER = "allow"


def _grid(trigger: CronTrigger, created: datetime, end: datetime) -> list[datetime]:
    """The trigger's times strictly after its creation, up to `end` inclusive."""
    first = created.replace(microsecond=0) + timedelta(seconds=1)
    while first.second % trigger.period:
        first += timedelta(seconds=1)
    times = []
    while first <= end:
        times.append(first)
        first += timedelta(seconds=trigger.period)
    return times


# -- the workload between faults ------------------------------------------------------------


@dataclass
class Workload:
    triggers: Triggers
    recorder: JobRecorder
    rng: random.Random
    trigger_uids: dict[str, str]
    run_now_values: list[str] = field(default_factory=list)
    one_time: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def act(self) -> None:
        choice = self.rng.random()
        if choice < 0.35:
            self.delete_a_running_job()
        elif choice < 0.65:
            self.run_now()
        elif choice < 0.85:
            self.create_one_time()

    def delete_a_running_job(self) -> None:
        running = [
            job
            for job in self.recorder.snapshot()
            if job.outcome is None and not job.deleted and not job.deleting
        ]
        if not running:
            return
        job = self.rng.choice(running)
        try:
            self.triggers.batch.delete_namespaced_job(
                job.name, self.triggers.namespace, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise
        self.counts["job deleted by hand"] += 1

    def _value_has_job(self, value: str) -> bool:
        uid = self.trigger_uids[RUN_NOW_TRIGGER]
        return any(j.slot == (uid, f"run-now/{value}") for j in self.recorder.snapshot())

    def run_now(self) -> None:
        # A new value only once the previous one started: a value overwritten before the
        # operator saw it is legitimately never run, and would make the count ambiguous.
        if self.run_now_values and not self._value_has_job(self.run_now_values[-1]):
            return
        recent = self.run_now_values[-5:]
        if recent and self.rng.random() < 0.3:
            value = self.rng.choice(recent)  # set again: must not start a second run
            self.counts["run-now value set again"] += 1
        else:
            value = f"v{len(self.run_now_values) + 1}"
            self.run_now_values.append(value)
            self.counts["run-now value"] += 1
        self._patch_run_now(value)

    def _patch_run_now(self, value: str) -> None:
        self.triggers.patch(
            RUN_NOW_TRIGGER, {"metadata": {"annotations": {"triggers.dev/run-now": value}}}
        )

    def create_one_time(self) -> None:
        name = f"once-{len(self.one_time) + 1}"
        at = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(1, 15))
        created = self.triggers.create(
            manifest(
                name,
                run_at=format_instant(at.replace(microsecond=0)),
                pod_annotations={"triggers.dev/simulate-duration": "2s"},
            )
        )
        self.trigger_uids[name] = created["metadata"]["uid"]
        self.one_time.append(name)
        self.counts["one-time trigger"] += 1


def _safely(action: Any) -> None:
    """A workload action during an API server restart may fail: it is then not done."""
    try:
        action()
    except ApiException as error:
        if error.status not in (500, 502, 503, 504, 409, 429):
            raise
    except (OSError, HTTPError):  # the API server is away
        pass


# -- checking -----------------------------------------------------------------------------


def _history(database_url: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trigger_operator",
            "history",
            "-A",
            "--limit",
            "0",
            "-o",
            "json",
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"history failed: {result.stderr}"
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _row_slot(row: dict[str, Any]) -> tuple[str, str]:
    prefix = f"{row['triggerUid']}/"
    rest = row["key"][len(prefix) :] if row["key"].startswith(prefix) else row["key"]
    if rest.startswith("run-now/"):
        return (row["triggerUid"], rest)
    return (row["triggerUid"], format_instant(parse_instant(row["scheduledFor"])))


@dataclass
class Report:
    seed: int
    profile: str
    faults: Counter[str]
    actions: Counter[str]
    relists: int
    figures: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    info: dict[str, int] = field(default_factory=dict)

    def add(self, figure: str, detail: str) -> None:
        self.figures[figure] += 1
        if len(self.details[figure]) < 20:
            self.details[figure].append(detail)

    def text(self) -> str:
        lines = [
            f"fault-injection report (profile {self.profile}, seed {self.seed})",
            f"faults injected: {sum(self.faults.values())}",
            *(f"  {kind}: {n}" for kind, n in sorted(self.faults.items())),
            "workload actions:",
            *(f"  {kind}: {n}" for kind, n in sorted(self.actions.items())),
            f"job watch relists: {self.relists}",
            *(f"{key}: {value}" for key, value in self.info.items()),
            *(f"{key}: {value}" for key, value in self.figures.items()),
        ]
        for figure, details in self.details.items():
            if details:
                lines.append(f"-- {figure} (first {len(details)}):")
                lines += [f"   {d}" for d in details]
        return "\n".join(lines)

    def failures(self) -> dict[str, int]:
        return {k: v for k, v in self.figures.items() if v and k != "slots expected"}


def check(
    *,
    report: Report,
    seen: list[SeenJob],
    rows: list[dict[str, Any]],
    namespace: str,
    cron: dict[str, tuple[str, datetime]],  # name -> (uid, creationTimestamp)
    end: datetime,
    run_now_uid: str,
    run_now_values: list[str],
    one_time_uids: dict[str, str],
) -> None:
    """Fill the report's figures from the Jobs seen and the ledger rows."""
    for figure in (
        "slots expected",
        "slots lost",
        "slots duplicated",
        "ledger rows missing",
        "ledger rows duplicated",
        "ledger rows not final",
        "ledger rows disagreeing with the cluster",
    ):
        report.figures[figure] = 0
    rows = [row for row in rows if row["namespace"] == namespace]
    jobs_by_slot: dict[tuple[str, str], list[SeenJob]] = defaultdict(list)
    for job in seen:
        if job.run_now is None:
            job.scheduled_for = format_instant(parse_instant(job.scheduled_for))
        jobs_by_slot[job.slot].append(job)
    rows_by_slot: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        rows_by_slot[_row_slot(row)].append(row)
    statuses = Counter(row["status"] for row in rows)
    report.info["ledger rows"] = len(rows)
    report.info.update({f"  status {k}": v for k, v in sorted(statuses.items())})
    report.info["job uids seen"] = len(seen)

    expected: list[tuple[str, tuple[str, str]]] = []
    for name, (uid, created) in cron.items():
        trigger = next(t for t in CRON_TRIGGERS if t.name == name)
        expected += [(name, (uid, format_instant(t))) for t in _grid(trigger, created, end)]
    expected += [(RUN_NOW_TRIGGER, (run_now_uid, f"run-now/{v}")) for v in run_now_values]
    for name, uid in one_time_uids.items():
        # A one-time trigger's single slot is whatever time its Job or row names.
        slots = [s for s in [*jobs_by_slot, *rows_by_slot] if s[0] == uid]
        expected.append((name, slots[0] if slots else (uid, "runAt")))
        if len(set(slots)) > 1:
            report.add("slots duplicated", f"{name}: runs for {sorted(set(slots))}")

    for name, slot in expected:
        report.figures["slots expected"] += 1
        jobs = jobs_by_slot.get(slot, [])
        slot_rows = rows_by_slot.get(slot, [])
        if len(jobs) > 1:
            report.add(
                "slots duplicated",
                f"{name} {slot[1]}: " + ", ".join(f"{j.name} uid={j.uid}" for j in jobs),
            )
        if not jobs and not any(r["status"] in ACCOUNTED_WITHOUT_JOB for r in slot_rows):
            report.add(
                "slots lost",
                f"{name} {slot[1]}: no Job; rows {[r['status'] for r in slot_rows]}",
            )

    for slot, jobs in jobs_by_slot.items():
        slot_rows = rows_by_slot.get(slot, [])
        label = f"{jobs[0].trigger} {slot[1]}"
        if not slot_rows:
            report.add("ledger rows missing", f"{label}: Job {jobs[0].name} has no row")
            continue
        row = slot_rows[0]
        if row["status"] not in FINAL:
            report.add("ledger rows not final", f"{label}: {row['status']} (Job {row['job']})")
        uids = {j.uid for j in jobs}
        outcome = {j.outcome for j in jobs if j.uid == row["jobUid"]} - {None}
        if row["jobUid"] not in uids:
            report.add(
                "ledger rows disagreeing with the cluster",
                f"{label}: row jobUid {row['jobUid']} status {row['status']}, "
                f"Jobs seen {sorted(uids)}",
            )
        elif row["status"] in ACCOUNTED_WITHOUT_JOB:
            report.add(
                "ledger rows disagreeing with the cluster",
                f"{label}: row {row['status']} but Job {jobs[0].name} ran",
            )
        elif outcome == {"Complete"} and row["status"] != "succeeded":
            report.add(
                "ledger rows disagreeing with the cluster",
                f"{label}: Job {row['job']} Complete, row {row['status']}",
            )
        elif outcome == {"Failed"} and row["status"] not in ("failed", "cancelled"):
            report.add(
                "ledger rows disagreeing with the cluster",
                f"{label}: Job {row['job']} Failed, row {row['status']}",
            )

    for slot, slot_rows in rows_by_slot.items():
        if len(slot_rows) > 1:
            report.add(
                "ledger rows duplicated",
                f"{slot}: {[(r['key'], r['status']) for r in slot_rows]}",
            )
        if slot not in jobs_by_slot:
            row = slot_rows[0]
            if row["status"] not in FINAL:
                report.add("ledger rows not final", f"{row['trigger']} {slot[1]}: {row['status']}")
            elif row["status"] not in ACCOUNTED_WITHOUT_JOB:
                report.add(
                    "ledger rows disagreeing with the cluster",
                    f"{row['trigger']} {slot[1]}: row {row['status']} job {row['job']}, "
                    "no such Job seen",
                )


# -- the run ------------------------------------------------------------------------------


@pytest.fixture
def control_plane(cluster: KubeCluster) -> Iterator[Any]:
    """The dev control plane behind `cluster` (None for kind or an external cluster)."""
    if cluster.backend != "dev":
        yield None
        return
    from trigger_operator.devcluster import binaries
    from trigger_operator.devcluster.cluster import DevCluster

    plane = DevCluster.attach(cluster.kubeconfig.parent, binaries.default(), log=lambda _: None)
    yield plane
    # A failed restart must not leave the session without an API server.
    if not plane.running():
        raise AssertionError("the control plane stopped")


def _log(line: str) -> None:
    print(f"[chaos {datetime.now(UTC):%H:%M:%S}] {line}", file=sys.stderr, flush=True)


def _migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "trigger_operator", "migrate", "--database-url", database_url],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _stable_leader(replicas: Replicas, *, hold: float, timeout: float) -> str:
    """A running replica holds the Lease and keeps it for `hold` seconds."""
    state: dict[str, Any] = {"holder": None, "since": 0.0}

    def stable() -> str | None:
        try:
            holder = replicas.holder()
        except Exception:
            return None
        owner = replicas.by_identity(holder)
        if owner is None or not owner.process.running():
            state["holder"] = None
            return None
        if holder != state["holder"]:
            state.update(holder=holder, since=time.monotonic())
            return None
        return holder if time.monotonic() - state["since"] >= hold else None

    return wait_for(stable, timeout=timeout, interval=0.5, message="one stable leader")


def test_every_slot_runs_once_and_the_ledger_tells_the_truth_under_faults(
    cluster: KubeCluster,
    control_plane: Any,
    triggers: Triggers,
    namespace: str,
    postgres_server: PostgresServer,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    profile = _profile()
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 32))
    _log(f"profile {profile.name}, {profile.faults} faults, seed {seed} (CHAOS_SEED={seed})")
    rng = random.Random(seed)
    wall = time.monotonic()

    _migrate(postgres_url)
    replicas = Replicas(
        cluster,
        namespace,
        tmp_path,
        env={
            **TIMINGS,
            "TRIGGER_OPERATOR_DATABASE_URL": postgres_url,
            "TRIGGER_OPERATOR_MIGRATE_ON_START": "false",
        },
    )
    recorder = JobRecorder(cluster, namespace).start()
    injector = FaultInjector(replicas, postgres_server, control_plane, rng, LEASE_SECONDS, log=_log)
    passed = False
    try:
        replicas.start_all()
        _stable_leader(replicas, hold=1.0, timeout=60)
        cron: dict[str, tuple[str, datetime]] = {}
        for trigger in CRON_TRIGGERS:
            created = triggers.create(trigger.body)
            cron[trigger.name] = (
                created["metadata"]["uid"],
                parse_instant(created["metadata"]["creationTimestamp"]),
            )
        workload = Workload(triggers, recorder, rng, {name: uid for name, (uid, _) in cron.items()})

        kinds = injector.kinds()
        plan = (
            rng.sample(kinds, min(profile.faults, len(kinds)))
            if profile.name == "short"
            else rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds], k=profile.faults)
        )
        for kind in plan:
            deadline = time.monotonic() + rng.uniform(*profile.gap)
            while time.monotonic() < deadline:
                _safely(workload.act)
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            injector.inject(kind)
        end = datetime.now(UTC).replace(microsecond=0)
        _log(f"faults done at {format_instant(end)}; healing and settling")

        # -- settle: every replica whole, one stable leader, the window handled ----------
        replicas.heal()
        leader = _stable_leader(replicas, hold=4.0, timeout=90)
        _log(f"stable leader {leader}")

        def unhandled() -> list[str]:
            pending = []
            for name in cron:
                cursor = triggers.status(name).get("cursor")
                if cursor is None or parse_instant(cursor) < end:
                    pending.append(f"{name} cursor {cursor}")
            pending += [
                f"run-now {v}"
                for v in workload.run_now_values[-1:]
                if not workload._value_has_job(v)
            ]
            pending += [
                f"{name} not completed"
                for name in workload.one_time
                if not triggers.status(name).get("completed")
            ]
            return pending

        wait_for(
            lambda: not unhandled(),
            timeout=CATCH_UP_SECONDS,
            interval=0.5,
            message=lambda: f"the fault window handled; pending: {unhandled()}",
        )
        for name in [*cron, *workload.one_time]:
            triggers.patch(name, {"spec": {"suspend": True}})

        def settled() -> bool:
            seen = recorder.snapshot()
            if any(j.outcome is None and not j.deleted for j in seen):
                return False
            rows = [r for r in _history(postgres_url) if r["namespace"] == namespace]
            return not [r for r in rows if r["status"] not in FINAL] and len(rows) >= len(
                {j.slot for j in seen}
            )

        settle_started = time.monotonic()
        try:
            wait_for(settled, timeout=SETTLE_SECONDS + 10, interval=1.0, message="settled")
        except AssertionError as error:
            _log(f"not settled: {error}")  # the check below says what is wrong
        _log(f"settled in {time.monotonic() - settle_started:.1f} s")

        recorder.relist()
        report = Report(seed, profile.name, injector.counts, workload.counts, recorder.relists)
        check(
            report=report,
            seen=recorder.snapshot(),
            rows=_history(postgres_url),
            namespace=namespace,
            cron=cron,
            end=end,
            run_now_uid=cron[RUN_NOW_TRIGGER][0],
            run_now_values=workload.run_now_values,
            one_time_uids={n: workload.trigger_uids[n] for n in workload.one_time},
        )
        report.info["wall time seconds"] = round(time.monotonic() - wall)
        text = report.text()
        print(text)
        _log("\n" + text)
        (tmp_path / "report.txt").write_text(text)
        assert report.figures["slots expected"] > 0
        assert not report.failures(), text
        passed = True
    finally:
        recorder.stop()
        replicas.stop_all()
        if not passed:
            for process in replicas.processes():
                print(f"----- {process.name} log (tail) -----\n{process.logs()[-4000:]}")
            print(f"operator logs in {tmp_path}")
