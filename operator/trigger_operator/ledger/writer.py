"""The ledger writer: records from the scheduler and the Job watch, written off the hot path.

Callers (coroutines on the operator's event loop) hand over a record and return at once:
`record_*` appends to a bounded in-memory queue and never waits for the database. One
dedicated thread drains the queue in batches (one transaction each) through the
synchronous `LedgerStore`.

Why a thread and a synchronous engine rather than SQLAlchemy's asyncio extension: the
writes must leave the dispatch path anyway, so an async driver buys nothing for the
caller; one writer thread serializes writes, which SQLite (one writer at a time) wants;
a slow or dead database (connect time-outs, retries with back-off) then never occupies
the event loop; the command line, the migrations (Alembic is synchronous) and the writer
share one engine setup; and no extra drivers (aiosqlite, greenlet) are needed.

Delivery: every write is an upsert keyed by the run's idempotency key with forward-only
status (see `store`), so retrying a batch, replaying records, or receiving them out of
order all leave one correct row. When the database is down the batch at the head of the
queue is retried with exponential back-off, and new records keep queueing. When the queue
is full the OLDEST waiting record is dropped (and counted): each record carries its run's
full identity, so a later record for the same run (its outcome) still creates the row,
and `reconcile` fills in from the cluster what an outage lost: listeners added with
`add_recovery_listener` learn when the database is back, which is when to do it.
Records that the database rejects as invalid (integrity or data errors) are dropped one
by one and counted, so that one bad record cannot stall the queue.

Settled runs: the writer remembers the keys of the newest SETTLED_LIMIT runs whose final
status it has committed (`settled`), so that the scheduler lets a deleted Job go only
once its run's final row is in the database (the run-record finalizer).

Retention: when given a retention, the writer deletes older rows once at start and then
every `prune_interval` seconds of its clock's monotonic time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from trigger_operator.clock import Clock
from trigger_operator.ledger.records import (
    FINAL_STATUSES,
    KnownRun,
    LeadershipEvent,
    LeadershipRecord,
    LedgerStatus,
    RunRecord,
    RunRef,
    moves_forward,
    next_status,
)
from trigger_operator.metrics import DropReason
from trigger_operator.models.instants import format_instant
from trigger_operator.models.settings import Settings

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from trigger_operator.ledger.store import LedgerStore, PruneResult

Record = RunRecord | LeadershipRecord

SETTLED_LIMIT = 100_000
"""How many runs with a committed final row the writer remembers (`settled`)."""


class LedgerSink(Protocol):
    """What the writer needs from a store (`LedgerStore` in production)."""

    def write(
        self, runs: Sequence[RunRecord], leadership: Sequence[LeadershipRecord] = ()
    ) -> None: ...

    def prune(self, *, older_than: datetime) -> PruneResult: ...

    def migrate(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RunLookup(Protocol):
    """A store that can say what it holds of a trigger's scheduled times (`LedgerStore`)."""

    def scheduled_runs(
        self, trigger_uid: str, *, since: datetime, until: datetime
    ) -> list[KnownRun]: ...


class LedgerUnreadable(Exception):
    """The ledger cannot be read now; the message says why."""


class LedgerMetrics:
    """The writer's Prometheus metrics, in `registry` (one writer per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "trigger_operator_ledger_queue_depth",
            "Ledger records waiting to be written.",
            registry=registry,
        )
        self.write_failures = Counter(
            "trigger_operator_ledger_write_failures",
            "Ledger batch writes that failed and will be retried.",
            registry=registry,
        )
        self.dropped = Counter(
            "trigger_operator_ledger_dropped_writes",
            "Ledger records given up: queue_full (oldest dropped), rejected by the database, "
            "or closed (recorded after the writer stopped).",
            ["reason"],
            registry=registry,
        )
        self.written = Counter(
            "trigger_operator_ledger_written_records",
            "Ledger records written.",
            registry=registry,
        )
        self.batches = Counter(
            "trigger_operator_ledger_batches",
            "Ledger batches committed.",
            registry=registry,
        )
        for reason in DropReason:
            self.dropped.labels(reason=reason.value)


def _permanent(error: BaseException) -> bool:
    """Whether retrying `error` cannot help: the records themselves are at fault.

    Anything else from the database (connection refused, locked, tables missing until
    someone migrates) is worth retrying.
    """
    from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

    return isinstance(error, IntegrityError | DataError) or not isinstance(error, SQLAlchemyError)


class LedgerWriter:
    """Queues ledger records and writes them from its own thread. Thread-safe.

    `queue_size` bounds the records held in memory; `batch_size` the records per
    transaction (at most half the queue). Failed writes are retried after `retry_initial`
    seconds, doubling up to `retry_max`. With `retention`, rows older than that are pruned
    at start and every `prune_interval` seconds of the clock's monotonic time. With
    `migrate`, the thread first brings the schema up to date. `idle_wakeup` is how often an
    idle thread looks at the clock. Metrics go to `registry`; `owns_store` closes the
    store when the writer stops.
    """

    def __init__(
        self,
        store: LedgerSink,
        *,
        clock: Clock,
        queue_size: int = 10_000,
        batch_size: int = 500,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        retention: timedelta | None = None,
        prune_interval: float = 3600.0,
        migrate: bool = False,
        idle_wakeup: float = 1.0,
        registry: CollectorRegistry = REGISTRY,
        owns_store: bool = False,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be >= 1")
        self.store = store
        self._clock = clock
        self._queue_size = queue_size
        # At most half the queue is in flight, so a full queue always has older records to
        # drop in favour of new ones.
        self._batch_size = max(1, min(batch_size, queue_size // 2))
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retention = retention
        self._prune_interval = prune_interval
        self._migrate = migrate
        self._idle_wakeup = idle_wakeup
        self._owns_store = owns_store
        self.metrics = LedgerMetrics(registry)
        self.metrics.queue_depth.set_function(lambda: len(self._queue))

        self._cond = threading.Condition()
        self._queue: deque[tuple[int, Record]] = deque()
        self._inflight = 0  # records at the head of the queue that the thread is writing
        self._next_seq = 0
        self._closing = False
        self._abandon = threading.Event()
        self._drop_warned = False
        self._next_prune: float | None = None
        self._thread: threading.Thread | None = None
        self._recovery_listeners: list[Callable[[], None]] = []
        # The runs whose final row is committed, with the status the row has now.
        self._settled: OrderedDict[str, LedgerStatus] = OrderedDict()

    # --- the callers' side: never blocks on the database -------------------------------

    def record(self, record: RunRecord) -> bool:
        """Queue `record`; False when it was refused (writer stopped, queue full of in-flight)."""
        if record.observed_at is None:
            record = dataclasses.replace(record, observed_at=self._clock.now())
        return self._enqueue(record)

    def record_missed(
        self,
        ref: RunRef,
        *,
        reason: str,
        message: str | None = None,
        leader_identity: str | None = None,
        leader_revision: int | None = None,
    ) -> bool:
        """The time of `ref` was not started (deadline passed, catch-up policy)."""
        return self._record_not_started(
            ref, LedgerStatus.MISSED, reason, message, leader_identity, leader_revision
        )

    def record_skipped(
        self,
        ref: RunRef,
        *,
        reason: str,
        message: str | None = None,
        leader_identity: str | None = None,
        leader_revision: int | None = None,
    ) -> bool:
        """The time of `ref` was skipped on purpose (concurrencyPolicy Forbid, DST Skip)."""
        return self._record_not_started(
            ref, LedgerStatus.SKIPPED, reason, message, leader_identity, leader_revision
        )

    def record_cancelled(
        self,
        ref: RunRef,
        *,
        reason: str,
        message: str | None = None,
        finished_at: datetime | None = None,
    ) -> bool:
        """The run of `ref` was stopped by the operator (concurrencyPolicy Replace)."""
        return self.record(
            RunRecord(
                ref=ref,
                status=LedgerStatus.CANCELLED,
                reason=reason,
                message=message,
                finished_at=finished_at,
            )
        )

    def record_leadership(
        self,
        event: LeadershipEvent,
        *,
        identity: str,
        revision: int | None,
        at: datetime | None = None,
        other_identity: str | None = None,
    ) -> bool:
        """A leadership change; `at` defaults to now."""
        return self._enqueue(
            LeadershipRecord(
                event=event,
                identity=identity,
                revision=revision,
                at=at if at is not None else self._clock.now(),
                other_identity=other_identity,
            )
        )

    def reconcile(self, evidence: Iterable[RunRecord]) -> int:
        """Queue runs rebuilt from the world (Jobs in the cluster, trigger status).

        Upserted like any record: what the ledger already knows better (a later status)
        stays, gaps are filled. Returns how many records were accepted.
        """
        return sum(1 for record in evidence if self.record(record))

    def add_recovery_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the database is reachable again after failed writes.

        It runs on the writer thread, right after the first write (or the start-up
        migration) that succeeds after an outage, while later records may still be
        queued; it must not block (hand the news to an event loop with
        `call_soon_threadsafe`). The operator answers it with `reconcile`, because an outage
        long enough to fill the queue has dropped records.
        """
        self._recovery_listeners.append(listener)

    def _record_not_started(
        self,
        ref: RunRef,
        status: LedgerStatus,
        reason: str,
        message: str | None,
        leader_identity: str | None,
        leader_revision: int | None,
    ) -> bool:
        return self.record(
            RunRecord(
                ref=ref,
                status=status,
                reason=reason,
                message=message,
                leader_identity=leader_identity,
                leader_revision=leader_revision,
            )
        )

    def _enqueue(self, record: Record) -> bool:
        with self._cond:
            if self._closing:
                self.metrics.dropped.labels(reason=DropReason.CLOSED.value).inc()
                return False
            if len(self._queue) >= self._queue_size:
                self.metrics.dropped.labels(reason=DropReason.QUEUE_FULL.value).inc()
                self._warn_drop()
                if len(self._queue) <= self._inflight:
                    return False  # everything queued is being written: nothing older to drop
                del self._queue[self._inflight]
            self._queue.append((self._next_seq, record))
            self._next_seq += 1
            self._cond.notify_all()
            return True

    def _warn_drop(self) -> None:
        if not self._drop_warned:
            self._drop_warned = True
            logger.warning(
                "ledger queue full; dropping the oldest records until writes succeed again",
                extra={"queue_size": self._queue_size},
            )

    # --- life cycle --------------------------------------------------------------------

    def settled(self, key: str, outcome: LedgerStatus | None = None) -> bool:
        """Whether this writer has committed a final row for the run `key` (or had one
        refused by the database, which no retry can change); with `outcome`, a row that
        a write of `outcome` would not change (a Job seen `Complete` after its run was
        recorded `cancelled` is settled once `succeeded` is committed)."""
        with self._cond:
            committed = self._settled.get(key)
        if committed is None:
            return False
        return outcome is None or not moves_forward(committed, outcome)

    @property
    def depth(self) -> int:
        """Records queued and not yet written (including the batch being written)."""
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None:
            raise RuntimeError("the ledger writer was already started")
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def known_runs(
        self, trigger_uid: str, *, since: datetime, until: datetime, timeout: float = 10.0
    ) -> list[KnownRun]:
        """What the ledger holds of a trigger's scheduled times in [since, until]. Blocks.

        Waits first for the records queued before the call, so a time skipped a moment
        ago is known. Raises LedgerUnreadable while the database cannot be read.
        """
        if not isinstance(self.store, RunLookup):
            raise LedgerUnreadable("this ledger's store cannot be read")
        if not self.flush(timeout):
            raise LedgerUnreadable("the ledger's queued records are not written yet")
        from sqlalchemy.exc import SQLAlchemyError  # loaded with the store, off start-up

        try:
            return self.store.scheduled_runs(trigger_uid, since=since, until=until)
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            raise LedgerUnreadable(f"cannot read the ledger: {reason}") from error

    def flush(self, timeout: float) -> bool:
        """Wait until every record queued before this call is written or dropped.

        Blocks. Returns False on time-out.
        """
        with self._cond:
            if not self._queue:
                return True
            last = self._queue[-1][0]
            return self._cond.wait_for(
                lambda: not self._queue or self._queue[0][0] > last, timeout=timeout
            )

    def stop(self, timeout: float = 10.0) -> int:
        """Refuse new records, write what is queued for up to `timeout` s, stop the thread.

        Returns how many records were left unwritten (logged as lost). Blocks: from a
        coroutine, use `aclose`.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abandon.set()
                with self._cond:
                    self._cond.notify_all()
                # The thread may be inside a database call; it exits right after it.
                self._thread.join(1.0)
        left = self.depth
        if left:
            logger.error("ledger writer stopped with records unwritten", extra={"unwritten": left})
        if self._owns_store:
            self.store.close()
        return left

    async def aclose(self, wait_seconds: float = 10.0) -> int:
        """`stop` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, wait_seconds)

    # --- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        if self._migrate:
            self._retrying("ledger migration", self._upgrade)
        self._next_prune = self._clock.monotonic()
        while not self._abandon.is_set():
            self._maybe_prune()
            batch = self._take_batch()
            if batch is None:
                return
            if batch:
                self._retrying("ledger write", functools.partial(self._write, batch))

    def _take_batch(self) -> list[tuple[int, Record]] | None:
        """The next batch to write; [] when idle (time to check pruning); None to exit."""
        with self._cond:
            if not self._queue:
                if self._closing:
                    return None
                self._cond.wait(self._idle_wakeup)
            if self._abandon.is_set():
                return None
            batch = list(islice(self._queue, self._batch_size))
            self._inflight = len(batch)
            return batch

    def _retrying(self, what: str, attempt: Callable[[], None]) -> None:
        delay = self._retry_initial
        failed = False
        while True:
            try:
                attempt()
            except Exception as error:
                failed = True
                if self._abandon.is_set():
                    return
                self.metrics.write_failures.inc()
                logger.warning(
                    "%s failed; retrying",
                    what,
                    extra={"error": str(error).splitlines()[0], "retry_in": delay},
                )
            else:
                if failed:
                    logger.info("%s succeeded again; the database is back", what)
                    self._recovered()
                return
            if self._abandon.wait(delay):
                return
            delay = min(delay * 2, self._retry_max)

    def _recovered(self) -> None:
        for listener in self._recovery_listeners:
            try:
                listener()
            except Exception:
                logger.exception("ledger recovery listener failed")

    def _upgrade(self) -> None:
        self.store.migrate()
        self._migrate = False

    def _write(self, batch: list[tuple[int, Record]]) -> None:
        rejected = 0
        try:
            self._write_records([record for _, record in batch])
        except Exception as error:
            if not _permanent(error):
                raise
            # Find the bad records: write one at a time, drop those refused for themselves.
            for _, record in batch:
                try:
                    self._write_records([record])
                except Exception as single:
                    if not _permanent(single):
                        raise
                    self._reject(record, single)
                    rejected += 1
        self._settle(record for _, record in batch)
        self._done(batch[-1][0], len(batch) - rejected)

    def _settle(self, records: Iterable[Record]) -> None:
        with self._cond:
            for record in records:
                if isinstance(record, RunRecord) and record.status in FINAL_STATUSES:
                    key = record.ref.key
                    before = self._settled.get(key)
                    self._settled[key] = (
                        record.status if before is None else next_status(before, record.status)
                    )
                    self._settled.move_to_end(key)
            while len(self._settled) > SETTLED_LIMIT:
                self._settled.popitem(last=False)

    def _write_records(self, records: Sequence[Record]) -> None:
        runs = [r for r in records if isinstance(r, RunRecord)]
        changes = [r for r in records if isinstance(r, LeadershipRecord)]
        self.store.write(runs, changes)

    def _reject(self, record: Record, error: BaseException) -> None:
        self.metrics.dropped.labels(reason=DropReason.REJECTED.value).inc()
        context = record.ref.log_context() if isinstance(record, RunRecord) else {}
        logger.error(
            "ledger record rejected by the database; dropped",
            extra={**context, "error": str(error).splitlines()[0]},
        )

    def _done(self, last_seq: int, count: int) -> None:
        with self._cond:
            while self._queue and self._queue[0][0] <= last_seq:
                self._queue.popleft()
            self._inflight = 0
            self._drop_warned = False
            self._cond.notify_all()
        self.metrics.written.inc(count)
        self.metrics.batches.inc()

    def _maybe_prune(self) -> None:
        if self._retention is None or self._next_prune is None:
            return
        if self._clock.monotonic() < self._next_prune:
            return
        self._next_prune = self._clock.monotonic() + self._prune_interval
        cutoff = self._clock.now() - self._retention
        try:
            pruned = self.store.prune(older_than=cutoff)
        except Exception as error:
            logger.warning(
                "ledger prune failed; trying again at the next interval",
                extra={"error": str(error).splitlines()[0]},
            )
            return
        if pruned.runs or pruned.leadership_changes:
            logger.info(
                "ledger pruned",
                extra={
                    "older_than": format_instant(cutoff),
                    "runs": pruned.runs,
                    "leadership_changes": pruned.leadership_changes,
                },
            )


def open_ledger(
    settings: Settings,
    *,
    clock: Clock,
    registry: CollectorRegistry = REGISTRY,
) -> LedgerWriter:
    """Build the ledger from the settings and start its writer; returns at once.

    When `settings.migrate_on_start`, the writer thread first migrates the database,
    retrying while it is unreachable, so an unavailable database never delays start-up
    (records queue meanwhile). Stop it with `stop()` / `await aclose()`.
    """
    writer = LedgerWriter(
        StoreOnFirstUse(settings),
        clock=clock,
        queue_size=settings.ledger_queue_size,
        retry_initial=settings.ledger_retry_initial_seconds,
        retry_max=settings.ledger_retry_max_seconds,
        retention=timedelta(days=settings.ledger_retention_days),
        migrate=settings.migrate_on_start,
        registry=registry,
        owns_store=True,
    )
    writer.start()
    return writer


class StoreOnFirstUse:
    """The `LedgerStore` of `settings`, built by the writer thread when it first writes.

    SQLAlchemy (and the database driver) load there, beside the scheduler's start
    rather than before it: a third of the operator's import time.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: LedgerStore | None = None

    @property
    def store(self) -> LedgerStore:
        """The store itself (built now, if the writer has not yet)."""
        return self._get()

    def _get(self) -> LedgerStore:
        if self._store is None:
            from trigger_operator.ledger.engine import build_engine, database_url, display_url
            from trigger_operator.ledger.store import LedgerStore

            url = database_url(self._settings)
            logger.info("ledger opening", extra={"database": display_url(url)})
            self._store = LedgerStore(build_engine(url))
        return self._store

    def write(self, runs: Sequence[RunRecord], leadership: Sequence[LeadershipRecord] = ()) -> None:
        self._get().write(runs, leadership)

    def prune(self, *, older_than: datetime) -> PruneResult:
        return self._get().prune(older_than=older_than)

    def scheduled_runs(
        self, trigger_uid: str, *, since: datetime, until: datetime
    ) -> list[KnownRun]:
        return self._get().scheduled_runs(trigger_uid, since=since, until=until)

    def migrate(self) -> None:
        self._get().migrate()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
