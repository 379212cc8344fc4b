"""Scale: N resident triggers at the API server's speed, and rollouts without a dispatch gap.

One run starts a private control plane (the dev cluster of `make run`, in a temporary
folder) and, for each N of resident triggers, measures in that same run:

- **limit**: the same-stack limit, L Jobs created by a plain Python client with 32
  threads (the Jobs the burst creates, at the fastest this machine's API server takes
  them from Python; their namespace is deleted before the next phase, so that the Job
  controller's work on them loads no later phase): Jobs per second;
- **cold start**: the operator started with N triggers that have no status yet: process
  start → Lease, → first status, → every trigger showing `status.nextRunAt`; from the
  Lease on, against N status patches at the same-stack limit of status patches (a plain
  Python client with 32 threads giving 2,000 new triggers their first status), and
  the cores the operator and kube-apiserver were busy meanwhile;
- **idle**: the operator's CPU and resident memory over a quiet window with N resident;
- **burst**: B one-time triggers due at one instant, with N resident: time from that
  instant until all B Jobs exist, against B / limit;
- **rollout**: a trigger due every 2 s while a second operator (a newer revision, as a
  `kubectl rollout restart` starts one) supersedes the first: the worst lateness of a
  slot across the hand-over, and the slots lost;
- **CronJob**, the peer, for the same burst: N resident CronJobs and B due at one minute
  boundary, with kube-controller-manager's default client QPS and with a raised one
  (a second cluster); time from the boundary until all B Jobs exist.

With `--profile`, py-spy samples the operator during the cold start and the burst, and
the summary (the functions with most samples) goes into the JSON.

    .venv/bin/python bench/scale.py                 # N = 1,000 and 10,000
    .venv/bin/python bench/scale.py -n 1000 --quick # one small N, no CronJob
    .venv/bin/python bench/scale.py --full          # N = 1,000, 10,000 and 30,000
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cronjob_comparison import (
    CRD,
    JOB_SPEC,
    RESULTS,
    Bench,
    JobWatch,
    cpu_seconds,
    in_parallel,
    memory_kib,
    parse_time,
    percentiles,
    private_cluster,
    say,
)
from trigger_operator.jobs.builder import ANNOTATION_LEADER, ANNOTATION_SCHEDULED_FOR
from trigger_operator.models.api import GROUP, PLURAL, VERSION

NAMESPACE = "scale"  # the operator's triggers, its Lease
CRONJOBS = "scale-cronjob"
LIMIT = "scale-limit"
LIMIT_STATUS = "scale-limit-status"
FAR = "0 0 1 1 *"  # once a year: resident, never due during the run
THREADS = 32


def iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def timeline(offsets: Sequence[float], points: int = 200) -> list[list[float]]:
    """Runs created over time: [seconds after the due instant, Jobs seen by then], at most
    `points` steps (the chart's curve)."""
    ordered = sorted(offsets)
    if not ordered:
        return []
    step = max(1, len(ordered) // points)
    marks = [[round(ordered[i], 3), i + 1] for i in range(step - 1, len(ordered), step)]
    if marks[-1][1] != len(ordered):
        marks.append([round(ordered[-1], 3), len(ordered)])
    return [[0.0, 0], *marks]


def custom(api: client.ApiClient) -> Any:
    return client.CustomObjectsApi(api)


def batch(api: client.ApiClient) -> Any:
    return client.BatchV1Api(api)


def trigger_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScheduledTrigger",
        "metadata": {"name": name},
        "spec": {"jobTemplate": {"spec": JOB_SPEC}, **spec},
    }


def create_many(
    what: str, calls: Sequence[Callable[[], object]], *, workers: int = THREADS
) -> float:
    """Run `calls` on `workers` threads with a progress line; returns the seconds taken."""
    done = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def counted(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for attempt in range(5):
                try:
                    call()
                    break
                except ApiException as error:
                    if error.status == 409:
                        break
                    if attempt == 4:
                        raise
                    time.sleep(0.5 * (attempt + 1))
            with lock:
                done[0] += 1

        return run

    stop = threading.Event()

    def progress() -> None:
        while not stop.wait(5):
            say(f"  {what}: {done[0]}/{len(calls)}")

    reporter = threading.Thread(target=progress, daemon=True)
    reporter.start()
    try:
        in_parallel((counted(call) for call in calls), workers=workers)
    finally:
        stop.set()
    seconds = time.monotonic() - started
    say(f"  {what}: {len(calls)} in {seconds:.1f} s ({len(calls) / seconds:.0f}/s)")
    return seconds


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    with contextlib.suppress(ApiException):
        core: Any = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name}})


# -- the operator processes ------------------------------------------------------------------


@dataclass
class Operator:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def first_line_time(self, needle: str) -> float | None:
        """The wall time (epoch) of the first log line containing `needle`."""
        for line in self.log_text().splitlines():
            if needle in line:
                with contextlib.suppress(ValueError, KeyError):
                    stamp = json.loads(line).get("time") or json.loads(line).get("timestamp")
                    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
                return time.time()
        return None

    def wait_for(self, needle: str, timeout: float) -> float:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator {self.name} exited; see {self.log}")
            if needle in self.log_text():
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"operator {self.name}: no '{needle}' in {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


#: `--set` settings for every operator this run starts (default: none, the defaults).
OPERATOR_SETTINGS: dict[str, str] = {}
#: What the benchmark sets itself (its namespaces, ledger, identities, the rollout's revisions).
BENCH_OWN_SETTINGS = frozenset(
    f"TRIGGER_OPERATOR_{name}"
    for name in (
        "NAMESPACES", "OPERATOR_NAMESPACE", "SQLITE_PATH", "DATABASE_URL", "METRICS_PORT",
        "IDENTITY", "REVISION",
    )
)  # fmt: skip


def start_operator(bench: Bench, name: str, *, revision: int) -> Operator:
    log = bench.state_dir / f"operator-{name}.log"
    started = time.time()
    process = bench.spawn_operator(
        [NAMESPACE], log=log, identity=name, revision=revision, settings=OPERATOR_SETTINGS
    )
    return Operator(name=name, process=process, log=log, started=started)


# -- profiles ----------------------------------------------------------------------------------


class Profile:
    """py-spy sampling one process until stopped; `summary()` reads its folded stacks."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.process = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
             "--output", str(path), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        return summarise(self.path)


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Samples per function: inclusive (anywhere on the stack) and self (at its top)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    if not path.exists():
        return {"samples": 0}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame.split(" (")[0] + " " + _where(frame) for frame in stack.split(";")]
        for frame in set(frames[1:]):
            inclusive[frame] += count
        own[frames[-1]] += count

    def share(samples: int) -> float:
        return round(100 * samples / max(total, 1), 1)

    return {
        "samples": total,
        "self_percent": {frame: share(n) for frame, n in own.most_common(top)},
        "inclusive_percent": {frame: share(n) for frame, n in inclusive.most_common(top * 2)},
    }


def _where(frame: str) -> str:
    inside = frame.partition(" (")[2].rstrip(")")
    parts = inside.split("/")
    return "(" + "/".join(parts[-2:]) + ")" if inside else ""


# -- the scenarios -----------------------------------------------------------------------------


# What `trigger-operator run` imports before its first line of work: the client libraries
# it never uses left out (kube/connection.py), then the operator.
OPERATOR_IMPORTS = (
    "from trigger_operator.kube.connection import leave_out_unused_clients; "
    "leave_out_unused_clients(); import trigger_operator.handlers.app"
)


def import_floor(repeats: int = 5) -> dict[str, Any]:
    """Seconds to import the operator process's code: the floor of every start."""
    say(f"import: the operator's modules, {repeats} times")
    seconds = []
    for _ in range(repeats):
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", OPERATOR_IMPORTS],
            check=True,
            capture_output=True,
        )
        seconds.append(time.monotonic() - started)
    seconds.sort()
    return {"median_seconds": round(seconds[len(seconds) // 2], 3), "all": seconds}


def same_stack_limit(bench: Bench, count: int) -> dict[str, Any]:
    say(f"limit: {count} Jobs from a plain Python client, {THREADS} threads")
    ensure_namespace(bench.api, LIMIT)
    create = batch(bench.api).create_namespaced_job
    calls = [
        partial(create, LIMIT, {"metadata": {"name": f"limit-{index:05d}"}, "spec": JOB_SPEC})
        for index in range(count)
    ]
    seconds = create_many("limit Jobs", calls)
    # Gone before the next phase: the Job controller making their pods, at its client's
    # QPS, kept the API server busy through the cold start that followed.
    waited = time.monotonic()
    delete_namespace(bench, LIMIT)
    say(f"  limit Jobs deleted in {time.monotonic() - waited:.1f} s")
    return {"jobs": count, "seconds": round(seconds, 2), "jobs_per_second": round(count / seconds)}


#: The status a pass writes on a new trigger (its first pass, in the cold start).
FIRST_STATUS: dict[str, Any] = {
    "active": [], "activeCount": 0, "completed": False, "missedRuns": 0, "notStarted": [],
    "observedGeneration": 1, "runNow": [], "scheduleHash": "9921430188c857a8",
    "nextRunAt": "2027-01-01T00:00:00Z",
    "upcomingRuns": ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
    "conditions": [{
        "type": "Ready", "status": "True", "reason": "Scheduled", "observedGeneration": 1,
        "message": "next run at 2027-01-01T00:00:00Z",
        "lastTransitionTime": "2026-12-03T18:15:22.597893Z",
    }],
}  # fmt: skip


def status_patch_limit(bench: Bench, count: int) -> dict[str, Any]:
    """The same-stack limit of a cold start: `count` new triggers (in a namespace of their
    own, which no operator watches) given the status of their first pass by a plain
    Python client with 32 threads, one merge patch each: patches per second."""
    say(f"limit: {count} status patches from a plain Python client, {THREADS} threads")
    ensure_namespace(bench.api, LIMIT_STATUS)
    api = custom(bench.api)
    create_many(
        "limit triggers",
        [
            partial(api.create_namespaced_custom_object, GROUP, VERSION, LIMIT_STATUS, PLURAL,
                    trigger_body(f"limit-{i:05d}", {"schedule": FAR}))
            for i in range(count)
        ],
    )  # fmt: skip
    seconds = create_many(
        "limit status patches",
        [
            partial(api.patch_namespaced_custom_object_status, GROUP, VERSION, LIMIT_STATUS,
                    PLURAL, f"limit-{i:05d}", {"status": FIRST_STATUS})
            for i in range(count)
        ],
    )  # fmt: skip
    delete_namespace(bench, LIMIT_STATUS)
    return {
        "patches": count,
        "seconds": round(seconds, 2),
        "patches_per_second": round(count / seconds),
    }


def delete_namespace(bench: Bench, name: str) -> None:
    """Delete a namespace and wait until it is gone (its objects' deletion loads no later
    phase)."""
    core = client.CoreV1Api(bench.api)
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)
    gone_by = time.monotonic() + 180
    while time.monotonic() < gone_by:
        try:
            core.read_namespace(name)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        time.sleep(0.5)


def create_resident(bench: Bench, count: int) -> float:
    say(f"resident: {count} triggers on '{FAR}'")
    create = custom(bench.api).create_namespaced_custom_object
    calls = [
        partial(
            create, GROUP, VERSION, NAMESPACE, PLURAL, trigger_body(f"r-{i:05d}", {"schedule": FAR})
        )
        for i in range(count)
    ]
    return create_many("resident triggers", calls)


class StatusWatch:
    """Counts the triggers that show `status.nextRunAt`, from a watch (no repeated lists)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.scheduled: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        api = custom(self.api)
        resource_version = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = json.loads(
                        api.list_namespaced_custom_object(
                            GROUP, VERSION, NAMESPACE, PLURAL, _preload_content=False
                        ).data
                    )
                    for item in listing["items"]:
                        self._see(item)
                    resource_version = listing["metadata"]["resourceVersion"]
                response = api.list_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL, watch=True,
                    resource_version=resource_version, timeout_seconds=300,
                    allow_watch_bookmarks=True, _preload_content=False,
                )  # fmt: skip
                pending = b""
                for chunk in response.stream(amt=None, decode_content=False):
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            resource_version = None
                            break
                        item = event.get("object") or {}
                        resource_version = item["metadata"]["resourceVersion"]
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self._see(item)
                    if self._stop.is_set() or resource_version is None:
                        break
            except Exception:
                time.sleep(0.5)
                resource_version = None

    def _see(self, item: dict[str, Any]) -> None:
        name = item["metadata"]["name"]
        if name not in self.scheduled and (item.get("status") or {}).get("nextRunAt"):
            self.scheduled[name] = time.time()


def migrate_ledger(bench: Bench) -> float:
    """`trigger-operator migrate` on the ledger the operators will use, before the first
    start: what every start but a new installation's first finds (a start that migrates
    keeps Alembic's modules for the life of its process, about 12 MiB)."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "trigger_operator", "migrate",
         "--database-url", f"sqlite:///{bench.state_dir / 'ledger.db'}"],
        check=True, capture_output=True, cwd=bench.state_dir, timeout=120,
    )  # fmt: skip
    return round(time.monotonic() - started, 2)


def api_requests(bench: Bench) -> collections.Counter[str]:
    """kube-apiserver's requests so far by verb, resource and subresource (its metrics)."""
    text = subprocess.run(
        [str(bench.kubectl), "--kubeconfig", str(bench.cluster.kubeconfig),
         "get", "--raw", "/metrics"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(
            part.split("=", 1) for part in line[line.index("{") + 1 : line.rindex("}")].split(",")
        )
        label = {k: v.strip('"') for k, v in labels.items()}
        dry_run = "dry-run" if label.get("dry_run") else None
        key = " ".join(
            x
            for x in (label.get("verb"), label.get("resource"), label.get("subresource"), dry_run)
            if x
        )
        counts[key] += int(float(line.rsplit(" ", 1)[1]))
    return counts


class BusyCores:
    """The CPU the operator and the control plane's processes use from now on, in cores:
    what bounds a phase on this machine (the operator's own CPU, or the API server's)."""

    def __init__(self, bench: Bench, operator: Operator) -> None:
        state = bench.cluster.state
        self.pids = {
            "operator": operator.process.pid,
            **{
                name: pid
                for name, pid in (state.pids if state is not None else {}).items()
                if name in ("kube-apiserver", "etcd", "kube-controller-manager")
            },
        }
        self.started = time.monotonic()
        self.spent = self._spent()

    def _spent(self) -> dict[str, float]:
        spent = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                spent[name] = cpu_seconds(pid)
        return spent

    def cores(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        now = self._spent()
        return {
            name: round((now[name] - self.spent[name]) / elapsed, 2)
            for name in self.pids
            if name in now and name in self.spent
        }


def cold_start(
    bench: Bench, count: int, profile_dir: Path | None
) -> tuple[Operator, dict[str, Any]]:
    say(f"cold start: the operator with {count} triggers and no status")
    migrated = migrate_ledger(bench)
    watch = StatusWatch(bench.api)
    watch.start()
    operator = start_operator(bench, "first", revision=1)
    spy = Profile(operator.process.pid, profile_dir / f"cold-{count}.txt") if profile_dir else None
    requests_before = api_requests(bench)
    lease = operator.wait_for("lease acquired", 120)
    busy = BusyCores(bench, operator)
    deadline = time.monotonic() + 900
    reported = 0.0
    while len(watch.scheduled) < count and time.monotonic() < deadline:
        if operator.process.poll() is not None:
            raise RuntimeError(f"operator exited; see {operator.log}")
        if time.monotonic() - reported >= 5:
            say(f"  scheduled: {len(watch.scheduled)}/{count}")
            reported = time.monotonic()
        time.sleep(0.2)
    cores = busy.cores()
    requests = api_requests(bench) - requests_before
    watch.stop()
    times = sorted(watch.scheduled.values())
    result: dict[str, Any] = {
        "triggers": count,
        "to_lease_seconds": round(lease - operator.started, 2),
        "to_first_status_seconds": round(times[0] - operator.started, 2) if times else None,
        "to_all_scheduled_seconds": round(times[-1] - operator.started, 2)
        if len(times) == count
        else None,
        "scheduled": len(times),
        "ledger_migrated_before_seconds": migrated,
        "busy_cores_after_lease": cores,
        # Every client's, the benchmark's own watch among them; the most frequent first.
        "api_requests": dict(requests.most_common()),
    }
    if spy is not None:
        result["profile"] = spy.stop()
    say(f"  cold start: {result}")
    return operator, result


def cold_start_ratio(cold: dict[str, Any], patches_per_second: float) -> float | None:
    """The cold start from the Lease to every trigger scheduled, against N status patches
    at the same-stack limit's rate."""
    if cold["to_all_scheduled_seconds"] is None or not patches_per_second:
        return None
    ideal = float(cold["triggers"]) / patches_per_second
    spent = float(cold["to_all_scheduled_seconds"]) - float(cold["to_lease_seconds"])
    return round(spent / ideal, 2)


def idle(operator: Operator, seconds: float) -> dict[str, Any]:
    say(f"idle: {seconds:.0f} s")
    pid = operator.process.pid
    start_cpu, start_at = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    spent = cpu_seconds(pid) - start_cpu
    return {
        "cpu_percent_of_one_core": round(100 * spent / (time.time() - start_at), 2),
        "rss_mib": round(memory_kib(pid, "VmRSS") / 1024, 1),
        "peak_rss_mib": round(memory_kib(pid, "VmHWM") / 1024, 1),
    }


def burst(
    bench: Bench, operator: Operator, count: int, limit_rate: float, profile_dir: Path | None
) -> dict[str, Any]:
    lead = max(15.0, count / 150 + 10)
    due = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    say(f"burst: {count} one-time triggers due at {iso(due)}")
    watch = JobWatch(bench.api, {NAMESPACE: "trigger-operator"})
    watch.start()
    create = custom(bench.api).create_namespaced_custom_object
    calls = [
        partial(
            create,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            trigger_body(f"b-{i:05d}", {"runAt": iso(due)}),
        )
        for i in range(count)
    ]
    create_many("burst triggers", calls)
    if time.time() > due.timestamp() - 2:
        say("  warning: the burst triggers were not all created well before they were due")
    while time.time() < due.timestamp() - 1:
        time.sleep(0.1)
    spy = Profile(operator.process.pid, profile_dir / f"burst-{count}.txt") if profile_dir else None
    rss = memory_kib(operator.process.pid, "VmRSS") / 1024
    deadline = time.monotonic() + 300
    seen: list[Any] = []
    while time.monotonic() < deadline:
        seen = [s for s in watch.sightings() if s.owner.startswith("b-")]
        if len(seen) >= count:
            break
        time.sleep(0.2)
    watch.stop()
    latest = max((s.seen for s in seen), default=float("nan"))
    seconds = latest - due.timestamp()
    ideal = count / limit_rate
    result: dict[str, Any] = {
        "triggers": count,
        "jobs_seen": len(seen),
        "seconds_until_all_exist": round(seconds, 2),
        "runs_per_second": round(count / seconds, 1) if seconds > 0 else None,
        "limit_seconds": round(ideal, 2),
        "ratio_to_limit": round(seconds / ideal, 2),
        "lateness": percentiles([s.lateness for s in seen]),
        "timeline": timeline([s.seen - due.timestamp() for s in seen]),
        "rss_mib_before": round(rss, 1),
        "rss_mib_after": round(memory_kib(operator.process.pid, "VmRSS") / 1024, 1),
    }
    if spy is not None:
        result["profile"] = spy.stop()
    say(f"  burst: {result['seconds_until_all_exist']} s, ratio {result['ratio_to_limit']}")
    return result


def rollout(bench: Bench, first: Operator, resident: int, seconds_after: float) -> dict[str, Any]:
    say("rollout: a trigger due every 2 s while a newer revision supersedes the operator")
    watch = JobWatch(bench.api, {NAMESPACE: "trigger-operator"})
    watch.start()
    custom(bench.api).create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL,
        trigger_body("every-2s", {"schedule": "*/2 * * * * *", "successfulRunsHistoryLimit": 100}),
    )  # fmt: skip
    time.sleep(8)
    begin = time.time()
    second = start_operator(bench, "second", revision=2)
    took = second.wait_for("lease acquired", 180)
    say(f"  the new revision leads after {took - second.started:.1f} s")
    first.stop()
    time.sleep(seconds_after)
    end = time.time()
    watch.stop()
    slots = [
        s for s in watch.sightings() if s.owner == "every-2s" and begin <= s.scheduled <= end - 3
    ]
    expected = {float(t) for t in range(int(begin) + (int(begin) % 2), int(end - 3) + 1, 2)}
    # Whether a slot ran: its Job (the history keeps them all), not only the watch's
    # sightings, which time the runs.
    listed = batch(bench.api).list_namespaced_job(NAMESPACE, _preload_content=False)
    items = [
        item
        for item in json.loads(listed.data)["items"]
        if item["metadata"]["name"].startswith("every-2s-")
    ]
    got = {
        parse_time(item["metadata"]["annotations"][ANNOTATION_SCHEDULED_FOR]) for item in items
    } | {s.scheduled for s in slots}
    # The new process's first Job: start -> Lease -> first Job, the whole hand-over.
    by_second = {
        item["metadata"]["name"]
        for item in items
        if item["metadata"]["annotations"].get(ANNOTATION_LEADER) == second.name
    }
    first_job = min((s.seen for s in slots if s.name in by_second), default=None)
    lateness = [s.lateness for s in slots]
    result = {
        "resident": resident,
        "new_leader_after_seconds": round(took - second.started, 2),
        "first_job_after_seconds": round(first_job - second.started, 2)
        if first_job is not None
        else None,
        "slots_expected": len(expected),
        "slots_lost": len(expected - got),
        "worst_lateness_seconds": round(max(lateness), 3) if lateness else None,
        "lateness": percentiles(lateness),
    }
    say(f"  rollout: {result}")
    second.stop()
    return result


def cronjob_burst(bench: Bench, resident: int, count: int) -> dict[str, Any]:
    """The CronJob controller with `resident` CronJobs and `count` due at one minute."""
    ensure_namespace(bench.api, CRONJOBS)
    create = batch(bench.api).create_namespaced_cron_job

    def cronjob(name: str, schedule: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": JOB_SPEC}},
        }

    say(f"CronJob: {resident} resident")
    create_many(
        "resident CronJobs",
        [partial(create, CRONJOBS, cronjob(f"r-{i:05d}", FAR)) for i in range(resident)],
    )
    boundary = (datetime.now(UTC) + timedelta(seconds=count / 150 + 25)).replace(
        second=0, microsecond=0
    ) + timedelta(minutes=1)
    schedule = f"{boundary.minute} {boundary.hour} {boundary.day} {boundary.month} *"
    say(f"CronJob: {count} due at {iso(boundary)}")
    watch = JobWatch(bench.api, {CRONJOBS: "CronJob"})
    watch.start()
    create_many(
        "burst CronJobs",
        [partial(create, CRONJOBS, cronjob(f"b-{i:05d}", schedule)) for i in range(count)],
    )
    deadline = boundary.timestamp() + 300
    seen: list[Any] = []
    reported = 0.0
    while time.time() < deadline:
        seen = [s for s in watch.sightings() if s.owner.startswith("b-")]
        if len(seen) >= count:
            break
        if time.time() > boundary.timestamp() and time.monotonic() - reported > 5:
            say(f"  CronJob Jobs: {len(seen)}/{count}")
            reported = time.monotonic()
        time.sleep(0.5)
    watch.stop()
    latest = max((s.seen for s in seen), default=float("nan"))
    return {
        "resident": resident,
        "cronjobs": count,
        "jobs_seen": len(seen),
        "seconds_until_all_exist": round(latest - boundary.timestamp(), 2)
        if len(seen) >= count
        else None,
        "lateness": percentiles([s.lateness for s in seen]),
        "timeline": timeline([s.seen - boundary.timestamp() for s in seen]),
    }


# -- the run -------------------------------------------------------------------------------------


def one_size(
    state: Path,
    resident: int,
    opts: argparse.Namespace,
    profile_dir: Path | None,
    *,
    repetition: int = 1,
) -> dict[str, Any]:
    """Every figure for one N; CronJob's too in the first repetition, unless `--quick`."""
    peers = not opts.quick and repetition == 1
    name = f"n{resident}-r{repetition}"
    if profile_dir is not None:  # each repetition's profiles of their own
        profile_dir = profile_dir / name
        profile_dir.mkdir(parents=True, exist_ok=True)
    with private_cluster(state / name, controller_manager_flags=()) as bench:
        bench.run_kubectl("apply", "--server-side", "-f", str(CRD))
        bench.run_kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        ensure_namespace(bench.api, NAMESPACE)
        result: dict[str, Any] = {"resident": resident, "repetition": repetition}
        result["limit"] = same_stack_limit(bench, opts.limit_jobs)
        result["patch_limit"] = status_patch_limit(bench, opts.limit_patches)
        result["create_resident_seconds"] = round(create_resident(bench, resident), 1)
        operator, result["cold_start"] = cold_start(bench, resident, profile_dir)
        result["cold_start"]["ratio_to_patch_limit"] = cold_start_ratio(
            result["cold_start"], result["patch_limit"]["patches_per_second"]
        )
        try:
            result["idle"] = idle(operator, opts.idle_seconds)
            result["burst"] = burst(
                bench, operator, opts.burst, result["limit"]["jobs_per_second"], profile_dir
            )
            result["rollout"] = rollout(bench, operator, resident, opts.rollout_seconds)
        finally:
            operator.stop()
        if peers:
            result["cronjob"] = cronjob_burst(bench, resident, opts.burst)
    if peers:
        flags = ("--kube-api-qps=500", "--kube-api-burst=1000")
        with private_cluster(state / f"{name}-qps", controller_manager_flags=flags) as bench:
            result["cronjob_raised_qps"] = cronjob_burst(bench, resident, opts.burst)
    return result


#: The figures whose spread across repetitions is reported: label, getter.
SPREAD: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
    ("limit_jobs_per_second", lambda r: r["limit"]["jobs_per_second"]),
    ("burst_seconds", lambda r: r["burst"]["seconds_until_all_exist"]),
    ("burst_ratio_to_limit", lambda r: r["burst"]["ratio_to_limit"]),
    ("cold_start_all_scheduled_seconds", lambda r: r["cold_start"]["to_all_scheduled_seconds"]),
    ("patch_limit_per_second", lambda r: r["patch_limit"]["patches_per_second"]),
    ("cold_start_ratio_to_patch_limit", lambda r: r["cold_start"]["ratio_to_patch_limit"]),
    ("idle_rss_mib", lambda r: r["idle"]["rss_mib"]),
    ("idle_cpu_percent", lambda r: r["idle"]["cpu_percent_of_one_core"]),
    ("rollout_first_job_after_seconds", lambda r: r["rollout"]["first_job_after_seconds"]),
    ("rollout_worst_lateness_seconds", lambda r: r["rollout"]["worst_lateness_seconds"]),
    ("rollout_slots_lost", lambda r: r["rollout"]["slots_lost"]),
]


def spread(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per N, each figure's min, median and max over the repetitions."""
    by_size: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for run in runs:
        by_size[run["resident"]].append(run)
    summary: dict[str, dict[str, Any]] = {}
    for size, group in sorted(by_size.items()):
        figures: dict[str, Any] = {"repetitions": len(group)}
        for label, get in SPREAD:
            values = []
            for run in group:
                with contextlib.suppress(KeyError, TypeError):
                    value = get(run)
                    if value is not None:
                        values.append(value)
            if values:
                values.sort()
                figures[label] = {
                    "min": values[0],
                    "median": values[len(values) // 2]
                    if len(values) % 2
                    else round((values[len(values) // 2 - 1] + values[len(values) // 2]) / 2, 3),
                    "max": values[-1],
                    "values": values,
                }
        summary[str(size)] = figures
    return summary


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = [r for r in results["runs"] if r.get("repetition", 1) == 1]
    middle = results["spread"]
    sizes = [r["resident"] for r in first]

    def median(size: int, label: str) -> float | None:
        figure = middle.get(str(size), {}).get(label)
        return figure["median"] if figure else None

    fig, (left, centre, right) = plt.subplots(1, 3, figsize=(16, 4.5))
    left.plot(sizes, [median(n, "burst_seconds") for n in sizes], "o-", label="trigger-operator")
    left.plot(sizes, [r["burst"]["limit_seconds"] for r in first], "k--", label="same-stack limit")
    cron = [r.get("cronjob", {}).get("seconds_until_all_exist") for r in first]
    if any(c is not None for c in cron):
        left.plot(sizes, cron, "s-", label="CronJob (default QPS)")
    raised = [r.get("cronjob_raised_qps", {}).get("seconds_until_all_exist") for r in first]
    if any(c is not None for c in raised):
        left.plot(sizes, raised, "^-", label="CronJob (QPS 500)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("resident triggers")
    left.set_ylabel(f"seconds until {results['burst']} due Jobs exist")
    left.set_title("burst (median of the repetitions)")
    left.legend()

    # Runs created over time, for the largest N: each peer's Jobs seen since the due instant.
    largest = max(first, key=lambda r: r["resident"])
    curves = [
        ("trigger-operator", largest["burst"].get("timeline"), "-"),
        ("CronJob (default QPS)", (largest.get("cronjob") or {}).get("timeline"), "-"),
        ("CronJob (QPS 500)", (largest.get("cronjob_raised_qps") or {}).get("timeline"), "-"),
    ]
    for label, points, style in curves:
        if points:
            centre.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    limit_seconds = largest["burst"]["limit_seconds"]
    centre.plot([0, limit_seconds], [0, results["burst"]], "k--", label="same-stack limit")
    centre.set_xscale("symlog", linthresh=1)
    centre.set_xlabel("seconds after the due instant")
    centre.set_ylabel("Jobs created")
    centre.set_title(f"runs created over time, N = {largest['resident']:,} resident")
    centre.legend()

    right.plot(sizes, [median(n, "idle_rss_mib") for n in sizes], "o-", label="RSS idle")
    right.axhline(150, color="red", linestyle=":", label="target 150 MiB at 10k")
    right.set_xscale("log")
    right.set_xlabel("resident triggers")
    right.set_ylabel("MiB")
    right.set_title("memory (median)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--resident", type=int, action="append", help="N (repeatable)")
    parser.add_argument("--full", action="store_true", help="N = 1,000, 10,000 and 30,000")
    parser.add_argument("--quick", action="store_true", help="no CronJob peer")
    parser.add_argument("--burst", type=int, default=1000, help="B, the triggers due at once")
    parser.add_argument("--limit-jobs", type=int, default=1000, help="L, Jobs of the limit")
    parser.add_argument(
        "--limit-patches", type=int, default=2000, help="status patches of the cold start's limit"
    )
    parser.add_argument("--idle-seconds", type=float, default=20)
    parser.add_argument("--rollout-seconds", type=float, default=20)
    parser.add_argument(
        "--repeat", type=int, default=1, help="K repetitions of each N, for the spread"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TRIGGER_OPERATOR_X=V",
        help="a setting for the operators (repeatable), e.g. TRIGGER_OPERATOR_API_QPS=0",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the cold start and burst")
    parser.add_argument("--keep-state", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    opts = parser.parse_args(argv)
    if opts.repeat < 1:
        parser.error("--repeat takes 1 or more")
    for setting in opts.set:
        key, equals, value = setting.partition("=")
        if not equals or not key.startswith("TRIGGER_OPERATOR_"):
            parser.error(f"--set takes TRIGGER_OPERATOR_NAME=VALUE, not {setting!r}")
        if key in BENCH_OWN_SETTINGS:
            parser.error(f"{key} is the benchmark's own to set")
        OPERATOR_SETTINGS[key] = value
    sizes = opts.resident or ([1000, 10_000, 30_000] if opts.full else [1000, 10_000])
    opts.output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    state = Path(tempfile.mkdtemp(prefix="scale-"))
    profile_dir = opts.output / f"scale-{stamp}-profiles" if opts.profile else None
    if profile_dir is not None:
        profile_dir.mkdir()
    results: dict[str, Any] = {
        "started": stamp,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "burst": opts.burst,
        "operator_settings": dict(OPERATOR_SETTINGS),
        "import": import_floor(),
        "runs": [],
    }
    try:
        for size in sizes:
            for repetition in range(1, opts.repeat + 1):
                if opts.repeat > 1:
                    say(f"N = {size}: repetition {repetition} of {opts.repeat}")
                results["runs"].append(
                    one_size(state, size, opts, profile_dir, repetition=repetition)
                )
    finally:
        if not opts.keep_state:
            shutil.rmtree(state, ignore_errors=True)
        else:
            say(f"state kept in {state}")
    results["spread"] = spread(results["runs"])
    path = opts.output / f"scale-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    plot(results, path.with_suffix(".png"))
    say(f"results: {path} and {path.with_suffix('.png')}")
    print_table(results)
    return 0


def print_table(results: dict[str, Any]) -> None:
    rows: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
        ("limit Jobs/s", lambda r: r["limit"]["jobs_per_second"]),
        ("burst s (ratio to limit)", lambda r: f"{r['burst']['seconds_until_all_exist']} "
         f"({r['burst']['ratio_to_limit']}x)"),
        ("CronJob burst s", lambda r: (r.get("cronjob") or {}).get("seconds_until_all_exist")),
        ("CronJob burst s, raised QPS",
         lambda r: (r.get("cronjob_raised_qps") or {}).get("seconds_until_all_exist")),
        ("cold start: to lease s", lambda r: r["cold_start"]["to_lease_seconds"]),
        ("status patch limit /s", lambda r: r["patch_limit"]["patches_per_second"]),
        ("cold start: all scheduled s", lambda r: r["cold_start"]["to_all_scheduled_seconds"]),
        ("cold start after Lease, ratio to limit",
         lambda r: f"{r['cold_start']['ratio_to_patch_limit']}x"),
        ("cold start: cores busy, operator / apiserver",
         lambda r: " / ".join(str(r["cold_start"]["busy_cores_after_lease"].get(k))
                              for k in ("operator", "kube-apiserver"))),
        ("idle RSS MiB", lambda r: r["idle"]["rss_mib"]),
        ("idle CPU % of a core", lambda r: r["idle"]["cpu_percent_of_one_core"]),
        ("rollout: new process to Lease s", lambda r: r["rollout"]["new_leader_after_seconds"]),
        ("rollout: new process to first Job s",
         lambda r: r["rollout"].get("first_job_after_seconds")),
        ("rollout: worst lateness s", lambda r: r["rollout"]["worst_lateness_seconds"]),
        ("rollout: slots lost", lambda r: r["rollout"]["slots_lost"]),
    ]  # fmt: skip
    print(f"import of the operator process: {results['import']['median_seconds']} s (median)")
    header = [
        "figure",
        *(
            f"N={r['resident']}" + (f" #{r['repetition']}" if r.get("repetition", 1) > 1 else "")
            for r in results["runs"]
        ),
    ]
    table = [header]
    for label, get in rows:
        cells = [label]
        for run in results["runs"]:
            try:
                cells.append(str(get(run)))
            except (KeyError, TypeError):
                cells.append("-")
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    repeated = {n: f for n, f in results.get("spread", {}).items() if f["repetitions"] > 1}
    if repeated:
        print()
        print("spread over the repetitions: median (min-max)")
        for size, figures in repeated.items():
            print(f"  N={size}, {figures['repetitions']} repetitions")
            for label, _ in SPREAD:
                if label in figures:
                    f = figures[label]
                    print(f"    {label:36} {f['median']} ({f['min']}-{f['max']})")


if __name__ == "__main__":
    sys.exit(main())
