"""Every trigger Job of a namespace ever seen, by uid, even after it was deleted.

A background thread watches Jobs (list, then watch from the list's resourceVersion) and
records each uid with its trigger, scheduled time, run-now value, the terminal condition
it reached and whether it was deleted. A broken watch (API server restart, 410 Gone after
a compaction) lists again: a uid that vanished meanwhile is marked deleted. A Job created
and deleted entirely inside such a gap is the one thing it cannot see.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster

LABEL_TRIGGER_UID = "triggers.dev/trigger-uid"


@dataclass
class SeenJob:
    """One Job uid as the recorder saw it."""

    uid: str
    name: str
    trigger: str
    trigger_uid: str
    scheduled_for: str
    run_kind: str
    run_now: str | None
    outcome: str | None = None  # "Complete" or "Failed", once reached
    deleted: bool = False
    deleting: bool = False

    @property
    def slot(self) -> tuple[str, str]:
        """(trigger uid, scheduled time) for scheduled runs, (trigger uid, value) for manual."""
        if self.run_now is not None:
            return (self.trigger_uid, f"run-now/{self.run_now}")
        return (self.trigger_uid, self.scheduled_for)


def _outcome(job: Any) -> str | None:
    for condition in (job.status.conditions if job.status else None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


class JobRecorder:
    """Watch the namespace's trigger Jobs in a thread; `seen` maps uid to `SeenJob`."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        self.batch = cluster.batch()
        self.namespace = namespace
        self.seen: dict[str, SeenJob] = {}
        self.relists = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-recorder", daemon=True)

    def start(self) -> JobRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def snapshot(self) -> list[SeenJob]:
        with self._lock:
            return [SeenJob(**vars(job)) for job in self.seen.values()]

    def _record(self, job: Any, *, deleted: bool = False) -> None:
        meta = job.metadata
        labels = meta.labels or {}
        if LABEL_TRIGGER_UID not in labels:
            return
        annotations = meta.annotations or {}
        with self._lock:
            seen = self.seen.get(meta.uid)
            if seen is None:
                seen = SeenJob(
                    uid=meta.uid,
                    name=meta.name,
                    trigger=labels.get("triggers.dev/trigger", ""),
                    trigger_uid=labels[LABEL_TRIGGER_UID],
                    scheduled_for=annotations.get("triggers.dev/scheduled-for", ""),
                    run_kind=annotations.get("triggers.dev/run-kind", ""),
                    run_now=annotations.get("triggers.dev/run-now"),
                )
                self.seen[meta.uid] = seen
            seen.outcome = _outcome(job) or seen.outcome
            seen.deleting = seen.deleting or meta.deletion_timestamp is not None
            seen.deleted = seen.deleted or deleted

    def relist(self) -> str:
        """List every Job, record it, mark vanished uids deleted; the list's resourceVersion."""
        listed: Any = self.batch.list_namespaced_job(self.namespace, _request_timeout=15)
        present = set()
        for job in listed.items:
            self._record(job)
            present.add(job.metadata.uid)
        with self._lock:
            for uid, seen in self.seen.items():
                if uid not in present:
                    seen.deleted = True
        self.relists += 1
        return str(listed.metadata.resource_version)

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self.relist()
                watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
                stream = watcher.stream(
                    self.batch.list_namespaced_job,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=5,
                    _request_timeout=15,
                )
                for event in stream:
                    job = event["object"]
                    self._record(job, deleted=event["type"] == "DELETED")
                    version = job.metadata.resource_version
                    if self._stop.is_set():
                        return
            except ApiException as error:
                if error.status == 410:
                    version = None  # too old: list again
                else:
                    version = None
                    time.sleep(0.5)
            except Exception:  # the API server is away: connection errors of every kind
                version = None
                time.sleep(0.5)
