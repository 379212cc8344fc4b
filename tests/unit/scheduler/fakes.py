"""In-memory stand-ins for the scheduler's collaborators, for unit tests of its logic.

`FakeGateway` keeps triggers and Jobs with the API server's semantics that the scheduler
relies on: every write bumps a numeric resourceVersion, a status patch that carries a
stale one fails with `Conflict`, a create of a taken name fails with `AlreadyExists`, a
delete with a uid precondition answers False when the Job is gone or is another one, and
a dry run rejects a container without an image, as the API server does. Any call can be
made to fail on demand (`fail`), and `before` runs a hook ahead of a call (to close the
gate mid-pass, say). With a `feed`, every change to a Job is delivered as a watch event
on the next turn of the event loop, as kopf would.

The real API server is exercised by the integration tier; here the test chooses the
interleavings and the time.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import LeaderIdentity
from trigger_operator.kube.gateway import (
    AlreadyExists,
    Conflict,
    Invalid,
    KubeError,
    Listing,
    NotFound,
)
from trigger_operator.ledger.records import (
    KnownRun,
    LeadershipRecord,
    LedgerStatus,
    RunKind,
    RunRecord,
    moves_forward,
)
from trigger_operator.ledger.store import PruneResult
from trigger_operator.ledger.writer import LedgerWriter
from trigger_operator.models.instants import format_instant

Key = tuple[str, str]


class Feed(Protocol):
    def on_job_event(self, event_type: str | None, body: dict[str, Any]) -> None: ...

    def on_trigger_event(self, event_type: str | None, body: dict[str, Any]) -> None: ...


class FakeGateway:
    """Triggers, Jobs and Events in memory (see the module docstring)."""

    def __init__(self, clock: Clock, *, feed: Feed | None = None) -> None:
        self.clock = clock
        self.feed = feed
        self.triggers: dict[Key, dict[str, Any]] = {}
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self._versions = itertools.count(1000)
        self._uids = itertools.count(1)
        self._failures: dict[str, deque[KubeError]] = defaultdict(deque)
        self._before: dict[str, Callable[[], None]] = {}

    # -- what tests arrange --------------------------------------------------------------------

    def fail(self, method: str, error: KubeError, *, times: int = 1) -> None:
        """Make the next `times` calls of `method` raise `error`."""
        self._failures[method].extend([error] * times)

    def before(self, method: str, hook: Callable[[], None], *, once: bool = False) -> None:
        """Run `hook` ahead of every call of `method` (with `once`, ahead of the next only)."""
        if once:

            def first_only() -> None:
                del self._before[method]
                hook()

            self._before[method] = first_only
        else:
            self._before[method] = hook

    def add_trigger(
        self,
        spec: dict[str, Any],
        *,
        name: str = "nightly",
        namespace: str = "team-a",
        uid: str = "0f3c2a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
        created: datetime,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "triggers.dev/v1alpha1",
            "kind": "ScheduledTrigger",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "generation": 1,
                "creationTimestamp": format_instant(created),
                "annotations": dict(annotations or {}),
            },
            "spec": copy.deepcopy(spec),
        }
        return self._store_trigger(body)

    def edit_trigger(
        self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Change a stored trigger as a user would; a spec change bumps the generation."""
        body = copy.deepcopy(self.triggers[(namespace, name)])
        before = copy.deepcopy(body["spec"])
        change(body)
        if body["spec"] != before:
            body["metadata"]["generation"] += 1
        return self._store_trigger(body)

    def set_job_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """What the Job controller would write, delivered to the feed."""
        body = self.jobs[(namespace, name)]
        body["status"] = copy.deepcopy(status)
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        self._deliver("MODIFIED", body)
        return copy.deepcopy(body)

    def remove_job(self, namespace: str, name: str) -> None:
        """Delete a Job as the API server does: finalizers keep it, marked for deletion."""
        body = self.jobs[(namespace, name)]
        body["metadata"].setdefault("deletionTimestamp", format_instant(self.clock.now()))
        self._changed(body)

    def _changed(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if body["metadata"].get("deletionTimestamp") and not body["metadata"].get("finalizers"):
            del self.jobs[key]
            self._deliver("DELETED", body)
            return
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        self._deliver("MODIFIED", body)

    def job_bodies(self, namespace: str = "team-a") -> list[dict[str, Any]]:
        return [copy.deepcopy(b) for (ns, _), b in sorted(self.jobs.items()) if ns == namespace]

    # -- the gateway's calls ----------------------------------------------------------------------

    async def read_trigger(self, namespace: str, name: str) -> dict[str, Any] | None:
        await self._enter("read_trigger")
        found = self.triggers.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_trigger_status(
        self, namespace: str, name: str, *, resource_version: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        await self._enter("patch_trigger_status")
        body = self.triggers.get((namespace, name))
        if body is None:
            raise NotFound(f"scheduledtriggers {name} not found", status=404)
        if body["metadata"]["resourceVersion"] != resource_version:
            raise Conflict("the object has been modified", status=409)
        merged = {**(body.get("status") or {}), **status}
        body["status"] = {k: v for k, v in merged.items() if v is not None}
        return self._store_trigger(body)

    async def list_triggers(
        self, namespace: str | None, *, each: Callable[[dict[str, Any]], None] | None = None
    ) -> Listing:
        await self._enter("list_triggers")
        return _handed(self._listing(self.triggers, namespace, lambda body: True), each)

    async def list_jobs(
        self,
        namespace: str | None,
        label_selector: str,
        *,
        each: Callable[[dict[str, Any]], None] | None = None,
    ) -> Listing:
        """Selectors as the scheduler writes them: `key` (has the label) or `key=value`."""
        await self._enter("list_jobs")
        label, equals, value = label_selector.partition("=")

        def selected(body: dict[str, Any]) -> bool:
            labels = body["metadata"]["labels"]
            return labels.get(label) == value if equals else label in labels

        return _handed(self._listing(self.jobs, namespace, selected), each)

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._enter("create_job")
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.jobs:
            raise AlreadyExists(f"jobs {key[1]} already exists", status=409, reason="AlreadyExists")
        stored = copy.deepcopy(body)
        stored["metadata"]["uid"] = f"job-uid-{next(self._uids)}"
        stored["metadata"]["creationTimestamp"] = format_instant(self.clock.now())
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        stored["status"] = {}
        self.jobs[key] = stored
        self._deliver("ADDED", stored)
        return copy.deepcopy(stored)

    async def dry_run_job(self, body: dict[str, Any]) -> None:
        await self._enter("dry_run_job")
        containers = body["spec"]["template"]["spec"].get("containers") or []
        for index, container in enumerate(containers):
            if not container.get("image"):
                raise Invalid(
                    f"Job.batch is invalid: spec.template.spec.containers[{index}].image: "
                    "Required value",
                    status=422,
                )

    async def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        await self._enter("read_job")
        found = self.jobs.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def delete_job(self, namespace: str, name: str, *, uid: str) -> bool:
        await self._enter("delete_job")
        body = self.jobs.get((namespace, name))
        if body is None or body["metadata"]["uid"] != uid:
            return False
        self.remove_job(namespace, name)
        return True

    async def release_job(
        self,
        namespace: str,
        name: str,
        *,
        uid: str,
        finalizers: Sequence[str],
        finalizer: str,
        resource_version: str | None = None,
    ) -> bool:
        await self._enter("release_job")
        body = self.jobs.get((namespace, name))
        if body is None:
            return False
        index = list(finalizers).index(finalizer)
        present = body["metadata"].get("finalizers") or []
        if (
            body["metadata"]["uid"] != uid
            or present[index : index + 1] != [finalizer]
            or (resource_version and body["metadata"]["resourceVersion"] != resource_version)
        ):
            raise Invalid("the test operation failed", status=422)
        present.pop(index)
        self._changed(body)
        return True

    async def emit_event(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> None:
        await self._enter("emit_event")
        self.events.append(
            {
                "namespace": namespace,
                "name": name,
                "type": event_type,
                "reason": reason,
                "message": message,
            }
        )

    # -- inside ----------------------------------------------------------------------------------

    async def _enter(self, method: str) -> None:
        self.calls.append(method)
        hook = self._before.get(method)
        if hook is not None:
            hook()
        await asyncio.sleep(0)  # a real call, answered or failed, yields to the event loop
        if self._failures[method]:
            raise self._failures[method].popleft()

    def _listing(
        self,
        store: dict[Key, dict[str, Any]],
        namespace: str | None,
        wanted: Callable[[dict[str, Any]], bool],
    ) -> Listing:
        items = [
            copy.deepcopy(body)
            for (ns, _), body in sorted(store.items())
            if namespace in (None, ns) and wanted(body)
        ]
        return Listing(items=items, resource_version=str(next(self._versions)))

    def _store_trigger(self, body: dict[str, Any]) -> dict[str, Any]:
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.triggers[key] = body
        if self.feed is not None:
            snapshot = copy.deepcopy(body)
            feed = self.feed
            asyncio.get_running_loop().call_soon(feed.on_trigger_event, "MODIFIED", snapshot)
        return copy.deepcopy(body)

    def _deliver(self, event_type: str, body: dict[str, Any]) -> None:
        if self.feed is not None:
            snapshot = copy.deepcopy(body)
            feed = self.feed
            asyncio.get_running_loop().call_soon(feed.on_job_event, event_type, snapshot)


def _handed(listing: Listing, each: Callable[[dict[str, Any]], None] | None) -> Listing:
    """As the gateway does with `each`: the items go to it, the listing keeps none."""
    if each is None:
        return listing
    for item in listing.items:
        each(item)
    return Listing(items=[], resource_version=listing.resource_version)


class FakeGate:
    """Leadership as a switch the test flips."""

    def __init__(self, *, leading: bool = True) -> None:
        self.leading = leading
        self.term = 0  # bumped by each set_leading(True) after a loss
        self._changed = asyncio.Event()
        self._leader = asyncio.Event()
        if leading:
            self._leader.set()

    def may_write(self) -> bool:
        return self.leading

    @property
    def writer(self) -> LeaderIdentity:
        return LeaderIdentity(identity="pod-b", revision=4)

    async def wait_until_leader(self) -> None:
        await self._leader.wait()

    def changed(self) -> asyncio.Event:
        return self._changed

    def set_leading(self, leading: bool) -> None:
        if leading and not self.leading:
            self.term += 1
        self.leading = leading
        if leading:
            self._leader.set()
        else:
            self._leader.clear()
        self._changed.set()


class MemorySink:
    """A ledger store that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.runs: list[RunRecord] = []
        self.changes: list[LeadershipRecord] = []
        # Cleared, writes wait: a database that is slow or away, for as long as a test wants.
        self.available = threading.Event()
        self.available.set()

    def write(self, runs: Sequence[RunRecord], leadership: Sequence[LeadershipRecord] = ()) -> None:
        self.available.wait()
        self.runs.extend(runs)
        self.changes.extend(leadership)

    def prune(self, *, older_than: datetime) -> PruneResult:
        return PruneResult(0, 0)

    def scheduled_runs(
        self, trigger_uid: str, *, since: datetime, until: datetime
    ) -> list[KnownRun]:
        """The newest status of each scheduled time written, by the store's own rule."""
        latest: dict[datetime, KnownRun] = {}
        for record in self.runs:
            ref = record.ref
            if ref.trigger_uid != trigger_uid or ref.kind is RunKind.MANUAL:
                continue
            if not since <= ref.scheduled_for <= until:
                continue
            old = latest.get(ref.scheduled_for)
            if old is None or moves_forward(old.status, record.status, new_kind=ref.kind):
                latest[ref.scheduled_for] = KnownRun(
                    scheduled_for=ref.scheduled_for, status=record.status, kind=ref.kind
                )
        return list(latest.values())

    def migrate(self) -> None:
        return None

    def close(self) -> None:
        return None


class MemoryLedger:
    """A real `LedgerWriter` over a `MemorySink`; `written()` waits for its queue."""

    def __init__(self, clock: Clock, registry: CollectorRegistry) -> None:
        self.sink = MemorySink()
        self.writer = LedgerWriter(self.sink, clock=clock, registry=registry)
        self.writer.start()

    def written(self) -> list[tuple[str, LedgerStatus, str | None]]:
        """(key, status, reason) of every record handed to the ledger so far, in order."""
        assert self.writer.flush(5)
        return [(r.ref.key, r.status, r.reason) for r in self.sink.runs]

    def close(self) -> None:
        self.sink.available.set()
        self.writer.stop(1)
