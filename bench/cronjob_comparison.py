"""Dispatch lateness of trigger-operator against the Kubernetes CronJob controller.

One run starts a private control plane (the project's dev cluster: a real
kube-controller-manager with the CronJob and Job controllers, kwok nodes whose pods
succeed at once), then gives both peers the same workload at the same time: N CronJobs
in one namespace and N ScheduledTriggers in another, all on `* * * * *` (the finest
schedule a CronJob can express), watched over K minute boundaries.

For every Job it records the scheduled time (the peer's annotation), the Job's
creationTimestamp (whole seconds only) and the moment a Job watch, opened before the
first boundary, first delivered it (sub-second; an upper bound of the creation time by
the watch's delivery delay, a few milliseconds on loopback). Lateness is the difference
to the scheduled time. It counts runs created against runs expected (missing,
duplicate), and samples /proc for the CPU time and resident memory of the operator and
of kube-controller-manager over the measured window. kube-controller-manager runs the
CronJob controller together with every other controller (Job, garbage collector, ...),
and its Job controller also serves the operator's Jobs: its numbers bound the CronJob
controller's cost from above.

A second scenario, which a CronJob cannot express, runs afterwards with the minute
workloads suspended: M triggers on the six-field `* * * * * *` (every second) for D
seconds; only the operator's numbers are reported for it.

    .venv/bin/python bench/cronjob_comparison.py [--count 200] [--minutes 3] [--quick]

Results: bench/results/cronjob-comparison-<time>.json and .png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

import trigger_operator
from trigger_operator.devcluster import binaries
from trigger_operator.devcluster.cluster import DevCluster
from trigger_operator.jobs.builder import ANNOTATION_SCHEDULED_FOR
from trigger_operator.models.api import GROUP, PLURAL, VERSION

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# Every CRD the operator serves (it waits for discovery to list each before it starts).
CRD = REPO / "crds"

CRONJOB = "CronJob"
OPERATOR = "trigger-operator"
PER_SECOND = "trigger-operator, every second"
PEERS = (CRONJOB, OPERATOR)
NAMESPACES = {CRONJOB: "bench-cronjob", OPERATOR: "bench-trigger", PER_SECOND: "bench-per-second"}

SCHEDULED_ANNOTATIONS = (
    "batch.kubernetes.io/cronjob-scheduled-timestamp",
    ANNOTATION_SCHEDULED_FOR,
)

# The same run for both peers: a pod that kwok starts and completes at once.
JOB_SPEC: dict[str, Any] = {
    "backoffLimit": 0,
    "template": {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "run", "image": "busybox", "command": ["true"]}],
        }
    },
}

COLORS = {CRONJOB: "#d95f02", OPERATOR: "#1b9e77", PER_SECOND: "#7570b3"}
CONTROLLER_MANAGER = "kube-controller-manager"


def say(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    print(f"[{stamp}] {message}", flush=True)


def iso(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- what a watch saw ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sighting:
    """One Job as the watch first delivered it."""

    peer: str
    owner: str
    name: str
    uid: str
    scheduled: float
    created: float
    seen: float
    # Found by a (re)list rather than an ADDED event: `seen` is then only an upper bound.
    listed: bool

    @property
    def lateness(self) -> float:
        return self.seen - self.scheduled

    @property
    def api_lateness(self) -> float:
        return self.created - self.scheduled


class JobWatch:
    """Follows Jobs in every namespace and keeps the first sighting of each.

    The raw event stream is read instead of the client's `Watch` helper so that the
    arrival time is taken when the bytes arrive, before any deserialisation.
    """

    def __init__(self, api: client.ApiClient, peers_by_namespace: Mapping[str, str]) -> None:
        self._batch = client.BatchV1Api(api)
        self._peers = dict(peers_by_namespace)
        self._lock = threading.Lock()
        self._sightings: dict[str, Sighting] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="job-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Job watch did not start within 30 s")

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            if self._response is not None:
                self._response.close()

    def sightings(self, peer: str | None = None) -> list[Sighting]:
        with self._lock:
            found = list(self._sightings.values())
        return [s for s in found if peer is None or s.peer == peer]

    def _run(self) -> None:
        resource_version = self._relist()
        self._ready.set()
        while not self._stop.is_set():
            try:
                resource_version = self._follow(resource_version)
            except _Gone:
                resource_version = self._relist()
            except (ApiException, HTTPError, OSError, ValueError, AttributeError):
                # Closing the response from `stop()` surfaces as any of these.
                if self._stop.is_set():
                    return
                time.sleep(0.2)

    def _relist(self) -> str:
        listing: Any = self._batch.list_job_for_all_namespaces(_preload_content=False)
        now = time.time()
        body = json.loads(listing.data)
        for item in body.get("items") or []:
            self._record(item, now, listed=True)
        return str(body["metadata"]["resourceVersion"])

    def _follow(self, resource_version: str) -> str:
        response: Any = self._batch.list_job_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=900,
            _preload_content=False,
        )
        self._response = response
        pending = b""
        for chunk in response.stream(amt=None, decode_content=False):
            arrived = time.time()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, item = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise _Gone(str(item.get("message")))
                resource_version = str(
                    (item.get("metadata") or {}).get("resourceVersion") or resource_version
                )
                if kind in ("ADDED", "MODIFIED"):
                    self._record(item, arrived, listed=False)
            if self._stop.is_set():
                break
        return resource_version

    def _record(self, job: dict[str, Any], seen: float, *, listed: bool) -> None:
        metadata = job.get("metadata") or {}
        peer = self._peers.get(metadata.get("namespace", ""))
        uid = metadata.get("uid", "")
        if peer is None or uid in self._sightings:
            return
        annotations = metadata.get("annotations") or {}
        scheduled = next((annotations[a] for a in SCHEDULED_ANNOTATIONS if a in annotations), None)
        if scheduled is None:
            return  # a manual run, not a scheduled one
        owners = metadata.get("ownerReferences") or [{}]
        sighting = Sighting(
            peer=peer,
            owner=str(owners[0].get("name", "")),
            name=metadata["name"],
            uid=uid,
            scheduled=parse_time(scheduled),
            created=parse_time(metadata["creationTimestamp"]),
            seen=seen,
            listed=listed,
        )
        with self._lock:
            self._sightings.setdefault(uid, sighting)


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


# -- what the processes cost -----------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int, key: str) -> int:
    """A line of /proc/<pid>/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every CPU, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass
class Sample:
    at: float
    cpu_seconds: float
    rss_mib: float


@dataclass
class Usage:
    """What one process spent over a window."""

    cpu_seconds: float
    cpu_percent_of_one_core: float
    peak_rss_mib: float
    lifetime_peak_rss_mib: float


class ProcessMeter:
    """Samples CPU time and resident memory of named processes every `interval` seconds."""

    def __init__(self, pids: Mapping[str, int], *, interval: float = 0.5) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.samples: dict[str, list[Sample]] = {name: [] for name in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self, name: str) -> Sample:
        pid = self.pids[name]
        return Sample(time.time(), cpu_seconds(pid), memory_kib(pid, "VmRSS") / 1024)

    def usage(self, name: str, start: Sample, end: Sample) -> Usage:
        inside = [s.rss_mib for s in self.samples[name] if start.at <= s.at <= end.at]
        spent = end.cpu_seconds - start.cpu_seconds
        return Usage(
            cpu_seconds=round(spent, 2),
            cpu_percent_of_one_core=round(100 * spent / max(end.at - start.at, 1e-9), 1),
            peak_rss_mib=round(max([*inside, start.rss_mib, end.rss_mib]), 1),
            lifetime_peak_rss_mib=round(memory_kib(self.pids[name], "VmHWM") / 1024, 1),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name in self.pids:
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    self.samples[name].append(self.sample(name))


@dataclass
class Window:
    """Start and end readings of every metered process and of the machine."""

    meter: ProcessMeter
    start: dict[str, Sample] = field(default_factory=dict)
    end: dict[str, Sample] = field(default_factory=dict)
    machine_start: tuple[float, float] = (0.0, 0.0)
    machine_end: tuple[float, float] = (0.0, 0.0)
    load_average: float = 0.0

    def open(self) -> None:
        self.start = {name: self.meter.sample(name) for name in self.meter.pids}
        self.machine_start = machine_busy()

    def close(self) -> None:
        self.end = {name: self.meter.sample(name) for name in self.meter.pids}
        self.machine_end = machine_busy()
        self.load_average = os.getloadavg()[0]

    def report(self) -> dict[str, Any]:
        busy = self.machine_end[0] - self.machine_start[0]
        total = self.machine_end[1] - self.machine_start[1]
        any_start = next(iter(self.start.values()))
        any_end = next(iter(self.end.values()))
        return {
            "seconds": round(any_end.at - any_start.at, 1),
            "machine_cpu_busy_percent": round(100 * busy / max(total, 1.0), 1),
            "load_average_1m_at_end": round(self.load_average, 2),
            "processes": {
                name: asdict(self.meter.usage(name, self.start[name], self.end[name]))
                for name in self.meter.pids
            },
        }


# -- the cluster and the workload ------------------------------------------------------------


@dataclass
class Bench:
    """A running cluster, its client and the operator process."""

    cluster: DevCluster
    api: client.ApiClient
    kubectl: Path
    state_dir: Path
    operator: subprocess.Popen[bytes] | None = None

    @property
    def operator_log(self) -> Path:
        return self.state_dir / "operator.log"

    def run_kubectl(self, *args: str) -> None:
        subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start_operator(self, namespaces: Sequence[str]) -> None:
        self.operator = self.spawn_operator(namespaces, log=self.operator_log)

    def spawn_operator(
        self,
        namespaces: Sequence[str],
        *,
        log: Path,
        identity: str = "bench",
        revision: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """`python -m trigger_operator run` on this cluster, its output appended to `log`;
        `settings` are more `TRIGGER_OPERATOR_*` variables for it."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TRIGGER_OPERATOR_", "POD_"))
        }
        env.update(
            {
                "KUBECONFIG": str(self.cluster.kubeconfig),
                "TRIGGER_OPERATOR_NAMESPACES": json.dumps(list(namespaces)),
                "TRIGGER_OPERATOR_OPERATOR_NAMESPACE": namespaces[0],
                "TRIGGER_OPERATOR_SQLITE_PATH": str(self.state_dir / "ledger.db"),
                "TRIGGER_OPERATOR_METRICS_PORT": "0",
                "TRIGGER_OPERATOR_IDENTITY": identity,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if revision is not None:
            env["TRIGGER_OPERATOR_REVISION"] = str(revision)
        env.update(settings or {})
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "trigger_operator", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
            )

    def wait_operator_leads(self, timeout: float) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            assert self.operator is not None
            if self.operator.poll() is not None:
                raise RuntimeError(f"the operator exited; see {self.operator_log}")
            if "lease acquired" in self.operator_log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the operator did not take the lease; see {self.operator_log}")

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.terminate()
            try:
                self.operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait(timeout=10)


@contextlib.contextmanager
def private_cluster(state_dir: Path, *, controller_manager_flags: Sequence[str]) -> Iterator[Bench]:
    cluster = DevCluster(
        state_dir / "cluster",
        binaries.ensure(),
        log=lambda m: say(f"cluster: {m}"),
        controller_manager_flags=controller_manager_flags,
    )
    cluster.start()
    bench = Bench(
        cluster=cluster,
        api=config.new_client_from_config(config_file=str(cluster.kubeconfig)),  # type: ignore[no-untyped-call]
        kubectl=binaries.default().kubectl,
        state_dir=state_dir,
    )
    try:
        yield bench
    finally:
        bench.stop_operator()
        cluster.stop()


def cronjob(name: str, *, history: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": history,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": JOB_SPEC},
        },
    }


def trigger(name: str, *, schedule: str, history: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ScheduledTrigger",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "successfulRunsHistoryLimit": history,
            "failedRunsHistoryLimit": 1,
            "jobTemplate": {"spec": JOB_SPEC},
        },
    }


def names(count: int) -> list[str]:
    return [f"bench-{index:04d}" for index in range(count)]


def in_parallel(calls: Iterable[Callable[[], object]], *, workers: int = 8) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def batch_api(api: client.ApiClient) -> Any:
    """The batch/v1 client, typed loosely: it takes plain dicts as bodies, its stubs do not."""
    return client.BatchV1Api(api)


def custom_api(api: client.ApiClient) -> Any:
    return client.CustomObjectsApi(api)


def create_cronjobs(api: client.ApiClient, namespace: str, count: int, *, history: int) -> None:
    create = batch_api(api).create_namespaced_cron_job
    in_parallel(partial(create, namespace, cronjob(name, history=history)) for name in names(count))


def create_triggers(
    api: client.ApiClient, namespace: str, count: int, *, schedule: str, history: int
) -> None:
    create = custom_api(api).create_namespaced_custom_object
    in_parallel(
        partial(
            create,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            trigger(name, schedule=schedule, history=history),
        )
        for name in names(count)
    )


def suspend_all(api: client.ApiClient) -> None:
    """Stop the minute workloads of both peers (running Jobs continue)."""
    batch, custom = batch_api(api), custom_api(api)
    patch = {"spec": {"suspend": True}}
    cronjobs = NAMESPACES[CRONJOB]
    triggers = NAMESPACES[OPERATOR]
    calls: list[Callable[[], object]] = [
        partial(batch.patch_namespaced_cron_job, item.metadata.name, cronjobs, patch)
        for item in batch.list_namespaced_cron_job(cronjobs).items
    ]
    calls += [
        partial(
            custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            triggers,
            PLURAL,
            item["metadata"]["name"],
            patch,
        )
        for item in custom.list_namespaced_custom_object(GROUP, VERSION, triggers, PLURAL)["items"]
    ]
    in_parallel(calls)


def wait_scheduled(api: client.ApiClient, namespace: str, count: int, timeout: float) -> None:
    """Wait until every trigger of the namespace shows a status.nextRunAt."""
    custom = custom_api(api)
    until = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < until:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        ready = sum(1 for item in items if (item.get("status") or {}).get("nextRunAt"))
        if ready >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"only {ready}/{count} triggers in {namespace} got a nextRunAt")


# -- numbers ---------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    data = np.asarray(values, dtype=float)
    return {
        "count": len(values),
        "min": round(float(data.min()), 3),
        "p50": round(float(np.percentile(data, 50)), 3),
        "p90": round(float(np.percentile(data, 90)), 3),
        "p99": round(float(np.percentile(data, 99)), 3),
        "max": round(float(data.max()), 3),
        "mean": round(float(data.mean()), 3),
    }


def ratio(ours: float | int | None, theirs: float | int | None) -> float | None:
    if ours is None or theirs is None or theirs <= 0:
        return None
    return round(float(ours) / float(theirs), 3)


def tally(
    sightings: Sequence[Sighting], *, owners: Sequence[str], times: Sequence[float]
) -> dict[str, Any]:
    """Runs created against runs expected, for one peer over the measured times."""
    wanted = set(times)
    inside = [s for s in sightings if s.scheduled in wanted]
    per_run = Counter((s.owner, s.scheduled) for s in inside)
    expected = {(owner, at) for owner in owners for at in times}
    return {
        "expected": len(expected),
        "created": len(inside),
        "missing": len(expected - set(per_run)),
        "duplicates": sum(n - 1 for n in per_run.values() if n > 1),
        "unexpected": len(set(per_run) - expected),
        "outside_window": len(sightings) - len(inside),
        "from_relist": sum(1 for s in inside if s.listed),
    }


def peer_report(
    sightings: Sequence[Sighting], *, owners: Sequence[str], times: Sequence[float]
) -> dict[str, Any]:
    wanted = set(times)
    inside = [s for s in sightings if s.scheduled in wanted]
    by_time: dict[float, list[Sighting]] = defaultdict(list)
    for s in inside:
        by_time[s.scheduled].append(s)
    return {
        "runs": tally(sightings, owners=owners, times=times),
        "lateness_seconds": percentiles([s.lateness for s in inside]),
        "creation_timestamp_lateness_seconds": percentiles([s.api_lateness for s in inside]),
        "per_boundary": {
            iso(at): percentiles([s.lateness for s in by_time.get(at, [])]) for at in times
        },
    }


def progress_line(watch: JobWatch, at: float, expected: int, peers: Sequence[str]) -> str:
    parts = []
    for peer in peers:
        got = [s for s in watch.sightings(peer) if s.scheduled == at]
        last = f", last at +{max(s.lateness for s in got):.2f} s" if got else ""
        parts.append(f"{peer} {len(got)}/{expected}{last}")
    return "; ".join(parts)


def follow_boundaries(
    watch: JobWatch,
    *,
    times: Sequence[float],
    per_boundary: int,
    peers: Sequence[str],
    drain: float,
) -> None:
    """Print progress while the boundaries pass; return when every run is in or at the deadline."""
    announced: set[float] = set()
    complete: set[tuple[str, float]] = set()
    next_report = 0.0
    deadline = times[-1] + drain
    while True:
        now = time.time()
        for at in times:
            if at <= now and at not in announced:
                announced.add(at)
                index = times.index(at) + 1
                say(f"minute boundary {index}/{len(times)}: {iso(at)}")
        for peer in peers:
            for at in announced:
                if (peer, at) in complete:
                    continue
                got = [s for s in watch.sightings(peer) if s.scheduled == at]
                if len(got) >= per_boundary:
                    complete.add((peer, at))
                    last = max(s.lateness for s in got)
                    say(f"  {peer}: all {per_boundary} runs of {iso(at)} seen, last +{last:.2f} s")
                    upcoming = [t for t in times if t > now]
                    if upcoming and all((p, at) in complete for p in peers):
                        say(f"  next boundary in {upcoming[0] - now:.0f} s")
        current = max(announced, default=None)
        pending = any((peer, current) not in complete for peer in peers)
        if current is not None and pending and now >= next_report:
            say("  " + progress_line(watch, current, per_boundary, peers))
            next_report = now + 5
        if len(complete) == len(peers) * len(times):
            return
        if now > deadline:
            say(f"  stopped waiting {drain:.0f} s after the last boundary")
            return
        time.sleep(0.25)


# -- the scenarios ---------------------------------------------------------------------------


@dataclass
class Options:
    count: int
    minutes: int
    drain: float
    per_second_triggers: int
    per_second_duration: int
    output: Path
    keep_state: bool
    controller_manager_flags: list[str]


def minute_scenario(
    bench: Bench, watch: JobWatch, meter: ProcessMeter, opts: Options
) -> dict[str, Any]:
    history = opts.minutes + 1  # keep every measured Job in the cluster, same for both peers
    say(f"creating {opts.count} CronJobs and {opts.count} ScheduledTriggers on '* * * * *'")
    started = time.monotonic()
    in_parallel(
        [
            lambda: create_cronjobs(bench.api, NAMESPACES[CRONJOB], opts.count, history=history),
            lambda: create_triggers(
                bench.api, NAMESPACES[OPERATOR], opts.count, schedule="* * * * *", history=history
            ),
        ],
        workers=2,
    )
    wait_scheduled(bench.api, NAMESPACES[OPERATOR], opts.count, timeout=120)
    say(f"  created, and every trigger has a nextRunAt, in {time.monotonic() - started:.1f} s")

    # The first measured boundary leaves a few seconds of calm after setting up.
    first = math.ceil((time.time() + 5) / 60) * 60
    times = [float(first + 60 * i) for i in range(opts.minutes)]
    say(
        f"measuring {opts.minutes} boundaries from {iso(times[0])}; "
        f"waiting {first - time.time():.0f} s"
    )
    window = Window(meter)
    time.sleep(max(0.0, times[0] - 5 - time.time()))
    window.open()
    follow_boundaries(watch, times=times, per_boundary=opts.count, peers=PEERS, drain=opts.drain)
    window.close()

    owners = names(opts.count)
    peers = {peer: peer_report(watch.sightings(peer), owners=owners, times=times) for peer in PEERS}
    ours, theirs = peers[OPERATOR]["lateness_seconds"], peers[CRONJOB]["lateness_seconds"]
    return {
        "schedule": "* * * * *",
        "objects_per_peer": opts.count,
        "boundaries": [iso(at) for at in times],
        "peers": peers,
        "ratio_trigger_operator_to_cronjob": {
            key: ratio(ours[key], theirs[key]) for key in ("p50", "p90", "p99", "max", "mean")
        },
        "resources": window.report(),
    }


def per_second_scenario(
    bench: Bench, watch: JobWatch, meter: ProcessMeter, opts: Options
) -> dict[str, Any]:
    say("suspending the minute workloads of both peers")
    suspend_all(bench.api)
    count, duration = opts.per_second_triggers, opts.per_second_duration
    say(f"creating {count} ScheduledTriggers on '* * * * * *' (every second)")
    create_triggers(bench.api, NAMESPACES[PER_SECOND], count, schedule="* * * * * *", history=3)
    wait_scheduled(bench.api, NAMESPACES[PER_SECOND], count, timeout=60)
    first = math.ceil(time.time()) + 3
    times = [float(first + i) for i in range(duration)]
    say(f"measuring {duration} seconds from {iso(times[0])}")
    window = Window(meter)
    time.sleep(max(0.0, first - time.time()))
    window.open()
    next_report = first + 5.0
    while time.time() < times[-1] + 1:
        if time.time() >= next_report:
            got = [s for s in watch.sightings(PER_SECOND) if s.scheduled in set(times)]
            say(f"  +{time.time() - first:.0f} s: {len(got)} runs seen")
            next_report += 5
        time.sleep(0.25)
    window.close()
    wanted, expected = set(times), count * duration
    drain_until = time.time() + 15
    seen = 0
    while time.time() < drain_until:
        seen = sum(1 for s in watch.sightings(PER_SECOND) if s.scheduled in wanted)
        if seen >= expected:
            break
        time.sleep(0.25)
    say(f"  {seen}/{expected} runs seen")
    report = peer_report(watch.sightings(PER_SECOND), owners=names(count), times=times)
    del report["per_boundary"]
    return {
        "schedule": "* * * * * *",
        "triggers": count,
        "seconds": duration,
        "window": [iso(times[0]), iso(times[-1])],
        **report,
        "resources": window.report(),
    }


def run(opts: Options) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="cronjob-comparison-"))
    say(f"state (cluster, operator log, ledger): {state_dir}")
    began = time.time()
    try:
        with private_cluster(
            state_dir, controller_manager_flags=opts.controller_manager_flags
        ) as bench:
            bench.run_kubectl("apply", "--server-side", "-f", str(CRD))
            bench.run_kubectl(
                "wait", "--for=condition=Established", "--timeout=60s",
                "crd/scheduledtriggers.triggers.dev",
            )  # fmt: skip
            core: Any = client.CoreV1Api(bench.api)
            for namespace in NAMESPACES.values():
                core.create_namespace({"metadata": {"name": namespace}})
            bench.start_operator([NAMESPACES[OPERATOR], NAMESPACES[PER_SECOND]])
            bench.wait_operator_leads(timeout=60)
            assert bench.operator is not None and bench.cluster.state is not None
            say(f"operator leads (pid {bench.operator.pid})")
            watch = JobWatch(bench.api, {ns: peer for peer, ns in NAMESPACES.items()})
            watch.start()
            meter = ProcessMeter(
                {
                    OPERATOR: bench.operator.pid,
                    CONTROLLER_MANAGER: bench.cluster.state.pids[CONTROLLER_MANAGER],
                }
            )
            meter.start()
            try:
                minute = minute_scenario(bench, watch, meter, opts)
                per_second = (
                    per_second_scenario(bench, watch, meter, opts)
                    if opts.per_second_triggers > 0
                    else None
                )
            finally:
                meter.stop()
                watch.stop()
            series = {
                name: [
                    (round(s.at - began, 2), s.cpu_seconds, round(s.rss_mib, 1)) for s in samples
                ]
                for name, samples in meter.samples.items()
            }
            sightings = [asdict(s) for s in watch.sightings()]
    except BaseException:
        say(f"failed; the cluster's and the operator's logs are kept in {state_dir}")
        raise
    if not opts.keep_state:
        shutil.rmtree(state_dir, ignore_errors=True)
    return {
        "benchmark": "cronjob_comparison",
        "started": iso(began),
        "duration_seconds": round(time.time() - began, 1),
        "environment": {
            "kubernetes": binaries.KUBERNETES_VERSION,
            "trigger_operator": trigger_operator.__version__,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "controller_manager_flags": opts.controller_manager_flags,
        },
        "minute": minute,
        "per_second": per_second,
        "series_columns": ["seconds_since_start", "cpu_seconds", "rss_mib"],
        "series": series,
        "sightings": sightings,
    }


# -- output ----------------------------------------------------------------------------------


def fmt(value: float | int | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def print_summary(results: dict[str, Any]) -> None:
    minute = results["minute"]
    print()
    print(
        f"{minute['objects_per_peer']} objects per peer on '* * * * *', "
        f"{len(minute['boundaries'])} boundaries from {minute['boundaries'][0]}"
    )
    header = (
        f"{'':24} {'runs':>11} {'miss':>5} {'dup':>4} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}"
    )
    print("dispatch lateness in seconds, first sight by a watch (creationTimestamp in brackets)")
    print(header)
    for peer in PEERS:
        report = minute["peers"][peer]
        runs, late, api = (
            report["runs"],
            report["lateness_seconds"],
            report["creation_timestamp_lateness_seconds"],
        )
        print(
            f"{peer:24} {runs['created']:>5}/{runs['expected']:<5} {runs['missing']:>5} "
            f"{runs['duplicates']:>4} "
            + " ".join(f"{fmt(late[k]):>7}" for k in ("p50", "p90", "p99", "max"))
        )
        print(
            f"{'':42}"
            + " ".join(f"{'[' + fmt(api[k]) + ']':>7}" for k in ("p50", "p90", "p99", "max"))
        )
    ratios = minute["ratio_trigger_operator_to_cronjob"]
    print(
        f"{'ratio operator/CronJob':42}"
        + " ".join(f"{fmt(ratios[k], 'x'):>7}" for k in ("p50", "p90", "p99", "max"))
    )
    print_resources(minute["resources"])
    per_second = results.get("per_second")
    if per_second:
        late, runs = per_second["lateness_seconds"], per_second["runs"]
        print()
        print(
            f"{per_second['triggers']} triggers on '* * * * * *' for {per_second['seconds']} s: "
            f"{runs['created']}/{runs['expected']} runs, {runs['missing']} missing, "
            f"{runs['duplicates']} duplicates; lateness p50 {fmt(late['p50'])} p90 "
            f"{fmt(late['p90'])} p99 {fmt(late['p99'])} max {fmt(late['max'])} s"
        )
        print_resources(per_second["resources"])


def print_resources(resources: dict[str, Any]) -> None:
    busy, load = resources["machine_cpu_busy_percent"], resources["load_average_1m_at_end"]
    print(f"over {resources['seconds']} s (machine CPU busy {busy}%, load {load:.1f}):")
    for name, usage in resources["processes"].items():
        share = usage["cpu_percent_of_one_core"]
        print(
            f"  {name:24} CPU {usage['cpu_seconds']:7.2f} s ({share:5.1f}% of a core)  "
            f"peak RSS {usage['peak_rss_mib']:6.1f} MiB"
        )


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minute = results["minute"]
    sightings = [Sighting(**s) for s in results["sightings"]]
    times = [parse_time(at) for at in minute["boundaries"]]
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    ax_cdf, ax_index, ax_cpu, ax_second = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]

    for peer in PEERS:
        late = np.sort([s.lateness for s in sightings if s.peer == peer and s.scheduled in times])
        if late.size == 0:
            continue
        stats = minute["peers"][peer]["lateness_seconds"]
        ax_cdf.step(
            late,
            np.arange(1, late.size + 1) / late.size,
            where="post",
            color=COLORS[peer],
            label=f"{peer}: p50 {stats['p50']:.2f} s, p99 {stats['p99']:.2f} s",
        )
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("lateness: first sight by the watch - scheduled time (s, log scale)")
    ax_cdf.set_ylabel("fraction of runs")
    ax_cdf.set_title("Dispatch lateness, every run of every boundary (CDF)")
    ax_cdf.grid(True, which="both", alpha=0.3)
    ax_cdf.legend(loc="upper left")

    for peer in PEERS:
        for number, at in enumerate(times):
            batch = sorted(s.lateness for s in sightings if s.peer == peer and s.scheduled == at)
            ax_index.plot(
                range(len(batch)),
                batch,
                color=COLORS[peer],
                alpha=0.9 if number == 0 else 0.45,
                linewidth=1.4,
                label=peer if number == 0 else None,
            )
    ax_index.set_xlabel("index in the batch (runs of one boundary, in the order they appeared)")
    ax_index.set_ylabel("lateness (s)")
    ax_index.set_title(f"Lateness vs index in the batch (one line per boundary, {len(times)} each)")
    ax_index.grid(True, alpha=0.3)
    ax_index.legend(loc="upper left")

    began = parse_time(results["started"])
    for name, color in ((OPERATOR, COLORS[OPERATOR]), (CONTROLLER_MANAGER, COLORS[CRONJOB])):
        series = results["series"].get(name) or []
        if len(series) < 2:
            continue
        seconds = np.array([row[0] for row in series])
        cpu = np.array([row[1] for row in series])
        # Over a 2 s sliding span: /proc counts CPU in 10 ms ticks, too coarse for 0.5 s.
        span = 4
        rate = (cpu[span:] - cpu[:-span]) / np.maximum(seconds[span:] - seconds[:-span], 1e-6) * 100
        label = name if name == OPERATOR else f"{name} (all its controllers)"
        ax_cpu.plot(seconds[span:], rate, color=color, linewidth=1, label=label)
    for boundary in times:
        ax_cpu.axvline(boundary - began, color="grey", linestyle=":", linewidth=1)
    per_second = results.get("per_second")
    if per_second:
        start, end = (parse_time(t) - began for t in per_second["window"])
        ax_cpu.axvspan(
            start, end + 1, color=COLORS[PER_SECOND], alpha=0.12, label="every-second scenario"
        )
    ax_cpu.set_xlabel("seconds since the benchmark started (dotted: measured minute boundaries)")
    ax_cpu.set_ylabel("CPU (% of one core, over 2 s)")
    ax_cpu.set_title("CPU use over the run")
    ax_cpu.grid(True, alpha=0.3)
    ax_cpu.legend(loc="upper left")

    if per_second:
        start, end = (parse_time(t) for t in per_second["window"])
        own = [s for s in sightings if s.peer == PER_SECOND and start <= s.scheduled <= end]
        ax_second.scatter(
            [s.scheduled - start for s in own],
            [s.lateness for s in own],
            s=8,
            color=COLORS[PER_SECOND],
            label=f"{per_second['triggers']} triggers, one run each per second",
        )
        stats = per_second["lateness_seconds"]
        ax_second.set_title(
            f"trigger-operator only, '* * * * * *': p50 {fmt(stats['p50'])} s, "
            f"p99 {fmt(stats['p99'])} s"
        )
        ax_second.set_xlabel("scheduled time (s since the window opened)")
        ax_second.set_ylabel("lateness (s)")
        ax_second.set_ylim(bottom=0)
        ax_second.grid(True, alpha=0.3)
        ax_second.legend(loc="upper left")
    else:
        ax_second.set_axis_off()
        ax_second.text(0.5, 0.5, "every-second scenario not run", ha="center", va="center")

    env = results["environment"]
    flags = " ".join(env["controller_manager_flags"])
    fig.suptitle(
        f"trigger-operator vs Kubernetes {env['kubernetes']} CronJob controller: "
        f"{minute['objects_per_peer']} of each on '* * * * *', {len(times)} boundaries, "
        f"same cluster, same run ({results['started'][:16]}Z, {env['cpus']} CPUs, kwok nodes)"
        + (f"\nkube-controller-manager {flags}" if flags else ""),
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=200, help="objects per peer")
    parser.add_argument("-k", "--minutes", type=int, default=3, help="minute boundaries")
    parser.add_argument("--quick", action="store_true", help="N=50, K=2, a 10 s every-second run")
    parser.add_argument(
        "--drain", type=float, default=50, help="seconds to wait for runs after the last boundary"
    )
    parser.add_argument(
        "--per-second-triggers", type=int, default=10, help="every-second triggers (0: skip)"
    )
    parser.add_argument("--per-second-duration", type=int, default=20, help="seconds measured")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep-state", action="store_true", help="keep the cluster's folder and logs"
    )
    parser.add_argument(
        "--controller-manager-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra kube-controller-manager flag, e.g. --kube-api-qps=200 (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.minutes, args.per_second_duration = 50, 2, 10
    opts = Options(
        count=args.count,
        minutes=args.minutes,
        drain=min(args.drain, 55.0),  # never into the next boundary's runs
        per_second_triggers=args.per_second_triggers,
        per_second_duration=args.per_second_duration,
        output=args.output,
        keep_state=args.keep_state,
        controller_manager_flags=args.controller_manager_flag,
    )
    results = run(opts)
    opts.output.mkdir(parents=True, exist_ok=True)
    stem = opts.output / f"cronjob-comparison-{results['started'][:19].replace(':', '')}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1))
    plot(results, stem.with_suffix(".png"))
    print_summary(results)
    print(f"\nresults: {stem.with_suffix('.json')}\nchart:   {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
