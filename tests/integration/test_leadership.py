"""Leadership on the real control plane: one scheduler at a time, the newest revision first.

Real operator processes compete for the real Lease; what the API server holds is the
evidence: the Lease's holder, and every Job's `triggers.dev/leader`,
`triggers.dev/revision`, scheduled time and creationTimestamp. A trigger firing every
two seconds (catchUp All, a 30 s starting deadline, unbounded history) must show exactly
one Job for every even second from the first Job to the last, whoever led at the time.

Lease timings are shortened to keep the tests fast: duration 6 s, renew every 2 s, retry
every 1 s (`FAST`). The release test keeps the default retry period of 2 s, to show that
the hand-over on SIGTERM comes from the watch event of the release, not from the poll.
Measured times are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.models.instants import parse_instant

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]

LEASE = "trigger-operator-leader"
DURATION = 6.0
FAST = {
    "lease_duration_seconds": "6",
    "renew_interval_seconds": "2",
    "retry_period_seconds": "1",
}
PERIOD = timedelta(seconds=2)
DEPLOYMENT = "trigger-operator"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


# -- what the API server holds ------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One Job, as the leadership checks see it."""

    name: str
    scheduled_for: datetime
    leader: str
    revision: str
    created: datetime


def _ticking(name: str) -> dict[str, Any]:
    return manifest(
        name,
        schedule="*/2 * * * * *",
        catchUp="All",
        maxCatchUpRuns=100,
        startingDeadlineSeconds=30,
        successfulRunsHistoryLimit=1000,
        failedRunsHistoryLimit=1000,
    )


def _runs(triggers: Triggers, name: str) -> list[Run]:
    runs = []
    for job in triggers.jobs(name):
        annotations = job.metadata.annotations
        runs.append(
            Run(
                name=job.metadata.name,
                scheduled_for=parse_instant(annotations["triggers.dev/scheduled-for"]),
                leader=annotations["triggers.dev/leader"],
                revision=annotations["triggers.dev/revision"],
                created=job.metadata.creation_timestamp,
            )
        )
    return sorted(runs, key=lambda run: run.scheduled_for)


def _assert_one_job_per_time(runs: list[Run]) -> None:
    """Every even second from the first Job to the last has exactly one Job."""
    assert runs, "no Jobs at all"
    counts = Counter(run.scheduled_for for run in runs)
    duplicates = sorted(t.isoformat() for t, n in counts.items() if n > 1)
    assert not duplicates, f"duplicate Jobs for {duplicates}"
    first, last = runs[0].scheduled_for, runs[-1].scheduled_for
    expected = {first + PERIOD * i for i in range(int((last - first) / PERIOD) + 1)}
    missing = sorted(t.isoformat() for t in expected - set(counts))
    assert not missing, f"no Job for {missing}"
    assert set(counts) == expected, "a Job off the two-second grid"


def _by(runs: Iterable[Run], leader: str) -> list[Run]:
    return [run for run in runs if run.leader == leader]


def _lease(cluster: KubeCluster, namespace: str) -> Any:
    try:
        return cluster.coordination().read_namespaced_lease(LEASE, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _holder(cluster: KubeCluster, namespace: str) -> str | None:
    lease = _lease(cluster, namespace)
    return lease.spec.holder_identity if lease is not None else None


def _seconds_until_holder(
    cluster: KubeCluster, namespace: str, identity: str, *, since: float, timeout: float
) -> float:
    """Poll the Lease every 50 ms; seconds from `since` (monotonic) until it names `identity`."""
    wait_for(
        lambda: _holder(cluster, namespace) == identity,
        timeout=timeout,
        interval=0.05,
        message=lambda: f"Lease held by {identity} (holder: {_holder(cluster, namespace)})",
    )
    return time.monotonic() - since


def _wait_for_runs(
    triggers: Triggers, name: str, count: int, *, leader: str | None = None, after: datetime
) -> list[Run]:
    """Wait until `count` Jobs (of `leader`, if given) are scheduled after `after`."""

    def enough() -> list[Run] | None:
        runs = _runs(triggers, name)
        recent = [r for r in runs if r.scheduled_for > after and leader in (None, r.leader)]
        return runs if len(recent) >= count else None

    return wait_for(
        enough, timeout=30, message=f"{count} Jobs of {name} by {leader or 'anyone'} after {after}"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _log_lines(process: OperatorProcess, text: str, *, start: int = 0) -> list[str]:
    return [line for line in process.logs()[start:].splitlines() if text in line]


def _logged_at(line: str) -> datetime:
    return parse_instant(line.split(" ", 1)[0])


def _wait_until_standing_by(process: OperatorProcess) -> None:
    """The replica competes for the Lease and watches it, so it hears of a release."""
    process.wait_for_log("leader election started", timeout=20)
    process.wait_for_log("watch-stream for leases.v1.coordination.k8s.io", timeout=20)


# -- the operator as a Deployment -----------------------------------------------------------


def _deploy_operator(cluster: KubeCluster, namespace: str, *, replicas: int) -> None:
    """A Deployment of the operator whose pods land on kwok nodes and run nothing.

    `minReadySeconds` keeps every pod unavailable, so a rollout adds one new pod
    (maxSurge) and keeps the old ones (maxUnavailable 0): old and new pods coexist, as
    they do while a real rollout is under way, for as long as the test needs.
    """
    labels = {"app": DEPLOYMENT}
    field = {"fieldRef": {"fieldPath": "metadata.name"}}
    body: Any = {  # a manifest: the client sends a dict as it is
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "labels": labels},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": 3600,
            "progressDeadlineSeconds": 7200,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "operator",
                            "image": "trigger-operator:dev",
                            "args": ["run"],
                            "env": [
                                {"name": "POD_NAME", "valueFrom": field},
                                {
                                    "name": "POD_NAMESPACE",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                                },
                            ],
                        }
                    ]
                },
            },
        },
    }
    cluster.apps().create_namespaced_deployment(namespace, body)


def _pods_of_revision(cluster: KubeCluster, namespace: str, revision: str) -> list[str]:
    owners = set()
    for rs in cluster.apps().list_namespaced_replica_set(namespace).items:
        assert rs.metadata is not None
        if (rs.metadata.annotations or {}).get(REVISION_ANNOTATION) == revision:
            owners.add(rs.metadata.name)
    pods = []
    selector = f"app={DEPLOYMENT}"
    for pod in cluster.core().list_namespaced_pod(namespace, label_selector=selector).items:
        meta = pod.metadata
        assert meta is not None and meta.name is not None
        if meta.deletion_timestamp is None and any(
            ref.kind == "ReplicaSet" and ref.name in owners for ref in meta.owner_references or []
        ):
            pods.append(meta.name)
    return sorted(pods)


def _wait_for_pods(cluster: KubeCluster, namespace: str, revision: str, count: int) -> list[str]:
    def exactly_count() -> list[str] | None:
        pods = _pods_of_revision(cluster, namespace, revision)
        return pods if len(pods) == count else None

    return wait_for(
        exactly_count,
        timeout=30,
        message=f"{count} pods of revision {revision}",
    )


def _as_pod(operators: Start, pod: str, namespace: str) -> OperatorProcess:
    """An operator process acting as `pod`: its revision comes from the pod's ReplicaSet."""
    # As the Deployment's downward API would set them for that pod.
    return operators(pod, POD_NAME=pod, POD_NAMESPACE=namespace, **FAST)


@dataclass
class Rollout:
    old: dict[str, OperatorProcess]
    old_leader: str
    new_pod: str
    new: OperatorProcess
    spawn_to_lease: float
    start_to_lease: float
    handed_over_at: datetime


def _roll_out(cluster: KubeCluster, triggers: Triggers, operators: Start) -> Rollout:
    """Two old pods lead and stand by; `kubectl rollout restart`; a new pod starts."""
    namespace = triggers.namespace
    triggers.create(_ticking("tick"))
    _deploy_operator(cluster, namespace, replicas=2)
    old = {
        pod: _as_pod(operators, pod, namespace)
        for pod in _wait_for_pods(cluster, namespace, "1", 2)
    }
    old_leader = wait_for(
        lambda: _holder(cluster, namespace), timeout=30, message="a leader among the old pods"
    )
    assert old_leader in old
    for pod, process in old.items():
        process.wait_for_log("operator starting", timeout=20)
        [starting] = _log_lines(process, "operator starting")
        assert "revision=1 revision_from=replicaset/" in starting, starting
        assert pod in starting
    _wait_for_runs(triggers, "tick", 2, leader=old_leader, after=_now() - timedelta(minutes=1))

    cluster.kubectl("rollout", "restart", f"deployment/{DEPLOYMENT}", "-n", namespace)
    [new_pod] = _wait_for_pods(cluster, namespace, "2", 1)
    spawned = time.monotonic()
    new = _as_pod(operators, new_pod, namespace)
    spawn_to_lease = _seconds_until_holder(
        cluster, namespace, new_pod, since=spawned, timeout=DURATION + 10
    )
    handed_over_at = _now()
    [starting] = _log_lines(new, "operator starting")
    assert "revision=2 revision_from=replicaset/" in starting, starting
    lease = _lease(cluster, namespace)
    assert lease.metadata.annotations["triggers.dev/revision"] == "2"
    acquired = lease.spec.acquire_time
    start_to_lease = (acquired - _logged_at(starting)).total_seconds()
    return Rollout(old, old_leader, new_pod, new, spawn_to_lease, start_to_lease, handed_over_at)


# -- the tests --------------------------------------------------------------------------------


def test_one_of_two_replicas_leads_and_a_killed_leader_is_replaced_within_the_lease_duration(
    cluster: KubeCluster, triggers: Triggers, operators: Start
) -> None:
    namespace = triggers.namespace
    triggers.create(_ticking("tick"))
    replicas = {name: operators(name, revision="1", **FAST) for name in ("a", "b")}
    leader = wait_for(lambda: _holder(cluster, namespace), timeout=30, message="a Lease holder")
    [standby] = set(replicas) - {leader}
    _wait_until_standing_by(replicas[standby])
    runs = _wait_for_runs(triggers, "tick", 3, after=_now() - timedelta(minutes=1))

    assert {run.leader for run in runs} == {leader}
    assert {run.revision for run in runs} == {"1"}
    assert not _log_lines(replicas[standby], "run started")
    assert not _log_lines(replicas[standby], "lease acquired")

    killed = time.monotonic()
    killed_at = _now()
    replicas[leader].kill()
    failover = _seconds_until_holder(
        cluster, namespace, standby, since=killed, timeout=DURATION + 5
    )
    print(f"\nfailover after SIGKILL of the leader: {failover:.2f} s")
    assert failover <= DURATION + 2

    runs = _wait_for_runs(triggers, "tick", 3, leader=standby, after=killed_at + PERIOD)
    _assert_one_job_per_time(runs)
    assert {run.leader for run in runs} == {leader, standby}
    assert all(run.created <= killed_at for run in _by(runs, leader))


def test_rollout_restart_hands_the_lease_to_the_new_revision_at_once(
    cluster: KubeCluster, triggers: Triggers, operators: Start
) -> None:
    rollout = _roll_out(cluster, triggers, operators)
    print(
        f"\nsupersession after rollout restart: {rollout.start_to_lease:.2f} s from the new "
        f"operator starting, {rollout.spawn_to_lease:.2f} s from its process being spawned"
    )
    # Taking it by expiry would need the new operator to watch an unchanged record for
    # the whole lease duration (6 s) first.
    assert rollout.start_to_lease <= 2.0

    old_leader = rollout.old[rollout.old_leader]
    old_leader.wait_for_log("lease lost: stopped dispatching", timeout=5)
    [lost] = _log_lines(old_leader, "lease lost: stopped dispatching")
    assert f"why=superseded holder={rollout.new_pod} holder_revision=2" in lost, lost
    old_leader.wait_for_log("scheduler paused: not leading", timeout=5)

    runs = _wait_for_runs(triggers, "tick", 3, leader=rollout.new_pod, after=rollout.handed_over_at)
    _assert_one_job_per_time(runs)
    assert {(run.leader, run.revision) for run in runs} == {
        (rollout.old_leader, "1"),
        (rollout.new_pod, "2"),
    }
    after_hand_over = [r for r in runs if r.scheduled_for > rollout.handed_over_at + PERIOD]
    assert after_hand_over
    assert {(run.leader, run.revision) for run in after_hand_over} == {(rollout.new_pod, "2")}
    # No dispatch by the old leader once it knew: a create already on the wire may land.
    lost_at = _logged_at(lost)
    late = [
        line
        for line in _log_lines(old_leader, "run started")
        if _logged_at(line) > lost_at + timedelta(seconds=0.5)
    ]
    assert not late, late
    for pod, process in rollout.old.items():
        assert len(_log_lines(process, "lease acquired")) == (pod == rollout.old_leader)


def test_the_old_revision_never_takes_the_lease_back_even_after_restarting(
    cluster: KubeCluster, triggers: Triggers, operators: Start
) -> None:
    namespace = triggers.namespace
    rollout = _roll_out(cluster, triggers, operators)
    old_leader = rollout.old[rollout.old_leader]
    old_leader.wait_for_log("lease lost: stopped dispatching", timeout=5)

    old_leader.stop()
    offset = len(old_leader.logs())
    old_leader.start()
    old_leader.wait_for_log("operator starting identity=" + rollout.old_leader, timeout=20)
    wait_for(
        lambda: _log_lines(old_leader, "leader election started", start=offset),
        timeout=20,
        message="the restarted old pod competing for the Lease",
    )
    [starting] = _log_lines(old_leader, "operator starting", start=offset)
    assert "revision=1 revision_from=replicaset/" in starting, starting

    # Watch for longer than a lease duration: every sample names the new pod.
    watched_from = _now()
    holders: set[str | None] = set()
    until = time.monotonic() + DURATION + 3
    while time.monotonic() < until:
        holders.add(_holder(cluster, namespace))
        time.sleep(0.1)
    assert holders == {rollout.new_pod}

    assert not _log_lines(old_leader, "lease acquired", start=offset)
    assert not _log_lines(old_leader, "run started", start=offset)
    runs = _runs(triggers, "tick")
    _assert_one_job_per_time(runs)
    watched = [run for run in runs if run.scheduled_for >= watched_from]
    assert len(watched) >= 4
    assert {(run.leader, run.revision) for run in watched} == {(rollout.new_pod, "2")}


def test_a_paused_leader_is_fenced_and_its_jobs_never_interleave_with_its_successors(
    cluster: KubeCluster, triggers: Triggers, operators: Start
) -> None:
    namespace = triggers.namespace
    triggers.create(_ticking("tick"))
    replicas = {name: operators(name, revision="1", **FAST) for name in ("a", "b")}
    leader = wait_for(lambda: _holder(cluster, namespace), timeout=30, message="a Lease holder")
    [standby] = set(replicas) - {leader}
    _wait_until_standing_by(replicas[standby])
    _wait_for_runs(triggers, "tick", 2, after=_now() - timedelta(minutes=1))

    # Pause just after the leader finished a dispatch: fencing decides what a leader
    # starts, and a request already on the wire when a process stops lands, or has its
    # answer logged, whenever the process resumes.
    seen = {run.name for run in _runs(triggers, "tick")}

    def dispatched() -> bool:
        fresh = [run.name for run in _runs(triggers, "tick") if run.name not in seen]
        started = _log_lines(replicas[leader], "run started")
        return bool(fresh) and all(any(f"job={n} " in line for line in started) for n in fresh)

    wait_for(dispatched, timeout=5, interval=0.02, message="a dispatch by the leader")
    paused = time.monotonic()
    paused_at = _now()
    replicas[leader].pause()
    takeover = _seconds_until_holder(
        cluster, namespace, standby, since=paused, timeout=DURATION + 5
    )
    print(f"\ntake-over from a paused (SIGSTOP) leader: {takeover:.2f} s")
    assert takeover >= DURATION - 2, "taken before the paused leader's lease could expire"
    _wait_for_runs(triggers, "tick", 2, leader=standby, after=paused_at)

    offset = len(replicas[leader].logs())
    resumed_at = _now()
    replicas[leader].resume()
    wait_for(
        lambda: _log_lines(replicas[leader], "lease lost: stopped dispatching", start=offset),
        timeout=10,
        message="the resumed leader noticing it lost the lease",
    )
    # Give the resumed process several periods in which it might dispatch.
    runs = _wait_for_runs(triggers, "tick", 3, leader=standby, after=resumed_at)

    # Not even an attempt: "run already started" is a create the API server refused only
    # because the successor had made that Job already.
    attempts = _log_lines(replicas[leader], "run started", start=offset)
    attempts += _log_lines(replicas[leader], "run already started", start=offset)
    assert not attempts, attempts
    _assert_one_job_per_time(runs)
    old, new = _by(runs, leader), _by(runs, standby)
    assert old and new and len(old) + len(new) == len(runs)
    assert max(run.created for run in old) < min(run.created for run in new)
    assert max(run.scheduled_for for run in old) < min(run.scheduled_for for run in new)
    assert _holder(cluster, namespace) == standby


def test_sigterm_releases_the_lease_and_the_standby_leads_within_two_seconds(
    cluster: KubeCluster, triggers: Triggers, operators: Start
) -> None:
    namespace = triggers.namespace
    triggers.create(_ticking("tick"))
    # The default retry period (2 s): the standby reacts to the release's watch event.
    timings = {"lease_duration_seconds": "6", "renew_interval_seconds": "2"}
    replicas = {name: operators(name, revision="1", **timings) for name in ("a", "b")}
    leader = wait_for(lambda: _holder(cluster, namespace), timeout=30, message="a Lease holder")
    [standby] = set(replicas) - {leader}
    _wait_until_standing_by(replicas[standby])
    _wait_for_runs(triggers, "tick", 2, after=_now() - timedelta(minutes=1))

    signalled = time.monotonic()
    signalled_at = _now()
    os.kill(replicas[leader].pid, signal.SIGTERM)
    hand_over = _seconds_until_holder(cluster, namespace, standby, since=signalled, timeout=10)
    print(f"\nhand-over after SIGTERM of the leader: {hand_over:.2f} s")
    assert hand_over <= 2.0

    assert replicas[leader].wait_exit(timeout=20) == 0
    assert _log_lines(replicas[leader], "lease released")
    runs = _wait_for_runs(triggers, "tick", 3, leader=standby, after=signalled_at)
    _assert_one_job_per_time(runs)
    assert {run.leader for run in runs} == {leader, standby}
    assert all(run.scheduled_for <= signalled_at for run in _by(runs, leader))
