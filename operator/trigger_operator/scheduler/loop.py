"""The scheduler: one loop, a min-heap of due times, bounded dispatch.

Watch events (from every replica's kopf handlers) keep `TriggerCache` warm and mark
triggers dirty. Only while the gate says this replica leads does the loop act: it pops
the triggers whose due time has come (O(log n) each), reconciles the dirty ones, and
sleeps until the earliest due time or until an event or a leadership change wakes it.
There is no timer per trigger, no polling tick and no full scan per dispatch.

A trigger is reconciled by at most one task at a time (`Reconciler` does the work);
an event that arrives meanwhile marks it dirty again, so nothing is lost. Job events go
to the `RunRecorder` (ledger and metrics) on every replica; it writes only while leading.
All waiting is on the injected clock, so the loop runs on fake time in unit tests.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import LABEL_TRIGGER_UID
from trigger_operator.jobs.state import ObservedJob, RunResult
from trigger_operator.kube.gateway import Forbidden
from trigger_operator.memory import give_back_free_memory
from trigger_operator.models.instants import parse_api_time
from trigger_operator.scheduler.cache import TriggerCache, TriggerEntry
from trigger_operator.scheduler.gate import Gate
from trigger_operator.scheduler.ports import SchedulerGateway
from trigger_operator.scheduler.reconcile import Reconciler
from trigger_operator.scheduler.recorder import RunRecorder

log = logging.getLogger(__name__)


def _urgency(entry: TriggerEntry, now: datetime) -> datetime:
    """When a dirty trigger's pass matters: its next run as status shows it.

    Only an order among waiting passes (none is held back by it): the most overdue
    first; a trigger new to the operator or edited since its status (maybe due now)
    with the due ones; one whose next run is hours away after those, and one with
    nothing scheduled (suspended, completed, invalid) last.
    """
    if entry.observed_generation != entry.generation:
        return now
    upcoming = parse_api_time(entry.next_run_at)
    return upcoming if upcoming is not None else now + _NOTHING_SCHEDULED


async def _give_back_memory() -> None:
    """Free heap pages back to the system, in a thread (ctypes lets go of the GIL), so that
    the walk of the heap never holds up the loop."""
    await asyncio.to_thread(give_back_free_memory)


# The longest the loop sleeps without a reason to wake: a safety net against a lost
# wake-up, not a polling tick (nothing is scanned when it expires).
_MAX_SLEEP = 60.0
# Where a trigger with nothing scheduled stands among the waiting passes: after the rest.
_NOTHING_SCHEDULED = timedelta(days=3650)
# Passes started in one turn of the loop. A pass runs its planning (decoding, validation,
# the plan) before its first request; a thousand started at once put that second of CPU
# before the first Job create could leave. In batches, the creates of the first batch are
# on the wire while the next one plans.
STARTS_PER_TURN = 32


class _Seen:
    """What a resync's listings held: fed to the scheduler item by item, as pages come."""

    def __init__(self) -> None:
        self.triggers: set[str] = set()
        self.jobs: set[tuple[str, str]] = set()

    def trigger(self, scheduler: Scheduler) -> Callable[[dict[str, Any]], None]:
        def take(body: dict[str, Any]) -> None:
            self.triggers.add(str(body["metadata"]["uid"]))
            scheduler.on_trigger_event(None, body)

        return take

    def job(self, scheduler: Scheduler) -> Callable[[dict[str, Any]], None]:
        def take(body: dict[str, Any]) -> None:
            metadata = body["metadata"]
            self.jobs.add((str(metadata["namespace"]), str(metadata["name"])))
            scheduler.on_job_event(None, body)

        return take


class Scheduler:
    """Feeds the cache from watch events and dispatches due triggers while leading."""

    def __init__(
        self,
        *,
        reconciler: Reconciler,
        recorder: RunRecorder,
        cache: TriggerCache,
        gate: Gate,
        clock: Clock,
        concurrency: int,
        due_concurrency: int | None = None,
        lister: SchedulerGateway | None = None,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.reconciler = reconciler
        self.recorder = recorder
        self.cache = cache
        self.gate = gate
        self.clock = clock
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        self._dirty: dict[str, None] = {}
        # Dirty triggers waiting for a free slot, most urgent first (see `_urgency`).
        self._ready: list[tuple[datetime, int, str]] = []
        self._queued: set[str] = set()
        # Triggers whose time has come, waiting for a slot of their own, earliest first: a
        # due pass never waits for one that back-fills status or waits on its patch.
        self._ready_due: list[tuple[datetime, int, str]] = []
        self._due_queued: set[str] = set()
        self._running: set[str] = set()
        self._running_due: set[str] = set()
        # Due while a pass of theirs still ran: queued as due once it ends.
        self._due_after_run: set[str] = set()
        self._wake = asyncio.Event()
        self._concurrency = concurrency
        self._due_concurrency = due_concurrency if due_concurrency is not None else concurrency
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Set once a resync has filled the cache: kopf's watches start then, and find
        # what they list held already (`handlers.watch.skip_events_already_held`).
        self.listed = asyncio.Event()
        self._lister = lister
        self._namespaces: list[str | None] = list(namespaces) or [None]

    # -- feed (called from watch handlers on every replica) --------------------------------

    def on_trigger_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        uid = str(body["metadata"]["uid"])
        if event_type == "DELETED":
            entry = self.cache.remove_trigger(uid)
            if entry is not None:
                self.recorder.trigger_deleted(entry)
                for job in entry.jobs.values():
                    if job.held:
                        self._deletion_requested(job)
            self._dirty.pop(uid, None)
            self.reconciler.calendars.untrack(uid)
            return
        entry = self.cache.triggers.get(uid)
        seen = entry.resource_version if entry is not None else None
        entry = self.cache.upsert_trigger(body)
        if entry.resource_version == body["metadata"].get("resourceVersion"):
            self.reconciler.calendars.track(uid, body)
        if uid not in self._running:
            entry.release_body()  # kept as JSON until a pass needs it
        if seen is None or entry.resource_version != seen:
            if uid in self._running:
                # Perhaps the echo of the running pass's own status patch, come before
                # the patch's answer: whether it needs another pass is known when the
                # pass ends (`_after_pass`).
                entry.seen_while_running = str(entry.resource_version)
            else:
                self.mark_dirty(uid)

    def on_job_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        if event_type == "DELETED":
            removed = self.cache.remove_job(body)
            if removed is not None:
                self.recorder.job_deleted(removed)
                self.mark_dirty(removed.trigger_uid)
            return
        state, previous = self.cache.upsert_job(body)
        if state.held and (previous is None or not previous.held):
            self._deletion_requested(state)
        if previous is None or previous.result != state.result or previous.uid != state.uid:
            self.recorder.job_changed(state, previous)
            # Status (active, lastRun, lastSuccessfulTime) is rebuilt from the Jobs.
            if state.result is not RunResult.RUNNING or previous is None:
                self.mark_dirty(state.trigger_uid)
        elif previous.started != state.started or previous.failed_pods != state.failed_pods:
            # Started, or a pod failed and is retried: the ledger's running and attempts.
            self.recorder.job_changed(state, previous)

    def on_calendar_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A ScheduleCalendar changed: every trigger that lists it plans again."""
        store = self.reconciler.calendars
        namespace, name = store.remove(body) if event_type == "DELETED" else store.upsert(body)
        for uid in store.users(namespace, name):
            self.mark_dirty(uid)

    def reconcile_ledger(self) -> None:
        """Rebuild the ledger's view of every cached trigger's runs from the cluster.

        On becoming leader, and when the ledger's database is back after an outage; it
        runs beside the passes (`RunRecorder.reconcile` takes turns with them).
        """
        self._spawn(
            self.recorder.reconcile(list(self.cache.triggers.values()), after_each=self._idle),
            name="ledger-reconcile",
        )

    def _idle(self, entry: TriggerEntry) -> None:
        if entry.uid not in self._running:
            entry.release_body()

    def _deletion_requested(self, job: ObservedJob) -> None:
        """A Job kept by the run-record finalizer: its trigger's pass decides when it may go.

        With the trigger gone, nothing can start its time again: it goes at once.
        """
        if job.trigger_uid in self.cache.triggers:
            self.mark_dirty(job.trigger_uid)
        elif self.gate.may_write():
            self.recorder.orphaned(job)
            self._spawn(self._release_orphan(job), name=f"release-{job.name}")

    async def _release_orphan(self, job: ObservedJob) -> None:
        # Its trigger is gone, and the run with it whatever the Job shows now.
        await self.reconciler.runs.release(job, exact=False)

    def _release_orphans(self) -> None:
        for job in self.cache.orphan_jobs():
            if job.held:
                self._deletion_requested(job)

    def _spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resync(self) -> None:
        """List every trigger and trigger Job, and make the cache agree with the listing.

        Before a replica may lead (its cache is complete before it dispatches), and then
        now and again as a safety net: objects deleted while a watch was relisting are
        dropped here, since no DELETED event will come for them.
        """
        assert self._lister is not None, "resync needs a lister"
        for namespace in self._namespaces:
            seen = _Seen()
            try:
                triggers = await self._lister.list_triggers(namespace, each=seen.trigger(self))
                jobs = await self._lister.list_jobs(
                    namespace, LABEL_TRIGGER_UID, each=seen.job(self)
                )
            except Forbidden as error:
                if namespace is None:
                    raise  # nothing can be listed: the caller retries and says so
                # One namespace the operator may not read blocks none of the others; its
                # triggers are refused (and reported) when the operator acts on them.
                log.warning(
                    "not allowed to list a namespace; leaving it out",
                    extra={"namespace": namespace, "error": str(error)},
                )
                continue
            gone, vanished = self.cache.drop_unlisted(
                trigger_uids=seen.triggers,
                triggers_version=triggers.resource_version,
                job_keys=seen.jobs,
                jobs_version=jobs.resource_version,
                namespace=namespace,
            )
            for entry in gone:
                self._dirty.pop(entry.uid, None)
                self.recorder.trigger_deleted(entry)
            for job in vanished:
                self.recorder.job_deleted(job)
                self.mark_dirty(job.trigger_uid)
        log.info("cache synced with the API", extra={"triggers": len(self.cache.triggers)})
        self.listed.set()
        await _give_back_memory()  # the pages the listing's decoded bodies held

    def mark_dirty(self, uid: str) -> None:
        if uid in self.cache.triggers:
            self._dirty[uid] = None
            self._wake.set()

    # -- the loop (acts only while leading) ---------------------------------------------

    async def run(self) -> None:
        log.info("scheduler started")
        leadership = self.gate.changed()
        was_leading = peak = False
        term = self.gate.term
        while not self._stopping:
            if not self.gate.may_write():
                if was_leading:
                    log.warning("scheduler paused: not leading")
                was_leading = False
                await self.gate.wait_until_leader()
                continue
            if not was_leading or self.gate.term != term:
                # A new leader looks at every trigger once: the last one may have left
                # work undone (a created Job whose status patch never happened). A new
                # term is a takeover even when its loss came and went between two turns.
                was_leading, term = True, self.gate.term
                for uid in list(self.cache.triggers):
                    self._dirty[uid] = None
                # Job events seen while another replica led went unrecorded here; the
                # ledger learns them beside the due passes, not before them.
                self.reconcile_ledger()
                self._release_orphans()
                peak = True
            self._wake.clear()
            leadership.clear()
            self._dispatch_ready()
            if peak and not (self._dirty or self._ready or self._ready_due or self._running):
                # Every trigger's first pass is done: give back what they held.
                peak = False
                self._spawn(_give_back_memory(), name="give-back-memory")
            await self.clock.wait_any(self._wake, leadership, within=self._seconds_to_next())

    def pause(self) -> None:
        """Stop dispatching now (shutdown): no new pass starts, running ones finish."""
        self._stopping = True
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _seconds_to_next(self) -> float:
        self._drop_stale_heads()
        if not self._heap:
            return _MAX_SLEEP
        delta = (self._heap[0][0] - self.clock.now()).total_seconds()
        return min(_MAX_SLEEP, max(0.0, delta))

    def _drop_stale_heads(self) -> None:
        while self._heap:
            due, _, uid = self._heap[0]
            entry = self.cache.triggers.get(uid)
            if entry is not None and entry.due_at == due:
                return
            heapq.heappop(self._heap)

    def _dispatch_ready(self) -> None:
        """Queue what is due or dirty, then start passes, most urgent first, in free slots.

        A pass never waits behind a less urgent one: after a takeover or a cold start,
        with every trigger to look at, those due now go first and the back-fill of the
        others (status, validation) takes the slots they leave. Passes whose time has come
        have slots of their own (`due_concurrency`): in a burst, a due Job create waits
        neither for back-fill nor for the status patches of the passes before it.
        """
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            due, _, uid = heapq.heappop(self._heap)
            entry = self.cache.triggers.get(uid)
            if entry is not None and entry.due_at == due:
                entry.due_at = None
                self._queue(uid, due, due=True)
        self._queue_dirty(now)
        started = 0
        while self._due_slot_free() and started < STARTS_PER_TURN:
            _, _, uid = heapq.heappop(self._ready_due)
            if uid in self._due_queued:
                started += self._start(uid, due=True)
        while self._slot_free() and started < STARTS_PER_TURN:
            _, _, uid = heapq.heappop(self._ready)
            if uid in self._queued:
                started += self._start(uid, due=False)
        if self._due_slot_free() or self._slot_free():
            # More to start: the next turn, once these have sent their first requests.
            self._wake.set()

    def _due_slot_free(self) -> bool:
        return bool(self._ready_due) and len(self._running_due) < self._due_concurrency

    def _slot_free(self) -> bool:
        return bool(self._ready) and len(self._running) - len(self._running_due) < self._concurrency

    def _queue_dirty(self, now: datetime) -> None:
        for uid in list(self._dirty):
            if uid in self._running:
                continue  # picked up again when the running task finishes
            del self._dirty[uid]
            entry = self.cache.triggers.get(uid)
            due = uid in self._due_after_run
            self._due_after_run.discard(uid)
            if entry is not None:
                self._queue(uid, now if due else _urgency(entry, now), due=due)

    def _queue(self, uid: str, urgency: datetime, *, due: bool = False) -> None:
        """Wait for a slot; a trigger queued both ways starts from whichever comes first."""
        if uid in self._running:
            self._dirty[uid] = None
            if due:
                self._due_after_run.add(uid)
        elif due:
            if uid not in self._due_queued:
                self._due_queued.add(uid)
                heapq.heappush(self._ready_due, (urgency, next(self._seq), uid))
        elif uid not in self._queued:
            self._queued.add(uid)
            heapq.heappush(self._ready, (urgency, next(self._seq), uid))

    def _after_pass(self, entry: TriggerEntry) -> None:
        """A trigger that changed while its pass ran gets another pass, unless the change
        was that pass's own status patch: a resourceVersion names one state, and the
        pass knew the state it wrote."""
        seen, entry.seen_while_running = entry.seen_while_running, None
        if seen is not None and seen != entry.written_version:
            self._dirty[entry.uid] = None

    def _start(self, uid: str, *, due: bool) -> bool:
        """Start a pass over `uid`; False when none started (gone, or one is running)."""
        self._queued.discard(uid)
        self._due_queued.discard(uid)
        if uid not in self.cache.triggers:
            return False
        if uid in self._running:
            self._dirty[uid] = None
            return False
        self._running.add(uid)
        if due:
            self._running_due.add(uid)
        self._spawn(self._reconcile(uid), name=f"reconcile-{uid}")
        return True

    async def _reconcile(self, uid: str) -> None:
        try:
            entry = self.cache.triggers.get(uid)
            if entry is None or self._stopping or not self.gate.may_write():
                return
            entry.written_version = entry.seen_while_running = None
            try:
                due_at = await self.reconciler.reconcile(entry)
            finally:
                entry.release_body()
                self._after_pass(entry)
            if due_at is not None and uid in self.cache.triggers:
                entry.due_at = due_at
                heapq.heappush(self._heap, (due_at, next(self._seq), uid))
        except Exception:
            log.exception("reconcile failed; retrying shortly", extra={"trigger_uid": uid})
            entry = self.cache.triggers.get(uid)
            if entry is not None:
                retry_at = self.clock.now() + self.reconciler.retry_delay
                entry.due_at = retry_at
                heapq.heappush(self._heap, (retry_at, next(self._seq), uid))
        finally:
            self._running.discard(uid)
            self._running_due.discard(uid)
            self._wake.set()
