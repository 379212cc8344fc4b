"""The Lease elector: one scheduler at a time, the newest revision first.

Runs as a task beside the scheduler and answers the scheduler's gate (`may_write`,
`writer`, `wait_until_leader`, `changed`). Every write to the Lease carries the
resourceVersion it read, so two replicas racing for it cannot both win. Watch events
of the Lease (fed by the kopf handlers through `observe`) make a standby react to a
release or a supersession at once, and a leader step down at once when another holder
appears; a poll every retry period (and a wake-up at the moment the observed record
would expire) covers what the watch cannot tell.

A leader that cannot renew before its local deadline, or reads another holder, stops
writing immediately and becomes a standby that may lead again. On shutdown the leader
releases the Lease, so its successor need not wait for expiry.

Caveat: fencing by local deadline bounds what the leader *starts*; a request already
on the wire when the deadline passes still lands. Job names derived from the scheduled
time make such a late write harmless (AlreadyExists), as they do for the moment of
overlap when a newer revision supersedes a leader that has not yet seen the change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import ANNOTATION_REVISION, LeaderIdentity
from trigger_operator.kube.gateway import AlreadyExists, Conflict, Forbidden, KubeError, NotFound
from trigger_operator.leadership.decisions import (
    Holder,
    Verdict,
    still_ours,
    verdict,
    write_deadline,
)
from trigger_operator.models.instants import format_micro_time
from trigger_operator.models.leadership import LeadershipEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often `release` re-reads and retries when a concurrent write moved the Lease.
_RELEASE_ATTEMPTS = 3
# A failing Lease call is retried no sooner than this, and at the latest after this.
_MIN_WAIT = 0.1
_MAX_BACKOFF = 30.0
# A Lease that cannot be used at all (no namespace, no permission) for this long is a
# broken installation, not a blip: the process says so and stops.
UNUSABLE_AFTER = 60.0


class LeaseUnusable(Exception):
    """The Lease cannot be used at all: its namespace is missing, or RBAC forbids it."""


class LeaseGateway(Protocol):
    """The Lease calls of the Kubernetes gateway: all the elector needs of the API."""

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    duration: float = 15.0
    renew_interval: float = 5.0
    retry_period: float = 2.0

    @property
    def duration_seconds(self) -> int:
        """The duration written to the Lease (whole seconds), which standbys go by."""
        return max(1, round(self.duration))


LeadershipListener = Callable[[LeadershipEvent, str | None], None]
"""Called with (event, other identity) on acquired / superseded / lost / released."""


def holder_of(lease: dict[str, Any] | None) -> Holder | None:
    """The holder a Lease record names, with the revision from its annotation."""
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    try:
        revision = int(annotations.get(ANNOTATION_REVISION, "0"))
    except ValueError:
        revision = 0
    return Holder(
        identity=spec.get("holderIdentity") or None,
        revision=revision,
        duration_seconds=float(spec.get("leaseDurationSeconds") or 15),
    )


def _resource_version(lease: dict[str, Any]) -> int | None:
    # etcd revisions: numeric and increasing. Anything else is treated as news.
    version = (lease.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(version))
    except ValueError:
        return None


class LeaseElector:
    """Holds, renews, supersedes and releases the scheduling Lease."""

    def __init__(
        self,
        gateway: LeaseGateway,
        *,
        lease: LeaseSettings,
        writer: LeaderIdentity,
        clock: Clock,
        on_change: LeadershipListener | None = None,
    ) -> None:
        self.gateway = gateway
        self.lease = lease
        self._writer = writer
        self.clock = clock
        self.on_change = on_change
        self._leading = False
        self._term = 0
        self._deadline = 0.0
        self._last_record: tuple[Any, ...] | None = None
        self._last_holder: Holder | None = None
        self._seen_at = 0.0
        self._newest_version: int | None = None
        self._became_leader = asyncio.Event()
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()
        self._step_lock = asyncio.Lock()
        # The elector may run on a loop (and thread) of its own, so that a busy scheduler
        # loop never delays a renew (`run_on`): then `_home` is its loop, `_consumer` the
        # loop whose tasks wait on the gate's events, and `_state` guards the fields both
        # threads change (no await is ever made while holding it).
        self._home: asyncio.AbstractEventLoop | None = None
        self._consumer: asyncio.AbstractEventLoop | None = None
        self._state = threading.RLock()
        self._stopping = False
        # Consecutive failed Lease calls: they back off, and are logged once per outage.
        self._failures = 0
        self._unusable_since: float | None = None
        self.jitter = random.Random()

    # -- the gate ----------------------------------------------------------------------

    def may_write(self) -> bool:
        if self._leading and self.clock.monotonic() >= self._deadline:
            with self._state:
                if self._leading and self.clock.monotonic() >= self._deadline:
                    self._lose("deadline", None)
        return self._leading

    def holds(self) -> bool:
        """`may_write` without side effects, safe to call from any thread."""
        return self._leading and self.clock.monotonic() < self._deadline

    @property
    def writer(self) -> LeaderIdentity:
        return self._writer

    @property
    def term(self) -> int:
        return self._term

    @property
    def deadline(self) -> float | None:
        """The monotonic instant until which this leader may write; None when not leading."""
        return self._deadline if self._leading else None

    async def wait_until_leader(self) -> None:
        while not self.may_write():
            self._became_leader.clear()
            await self._became_leader.wait()

    def changed(self) -> asyncio.Event:
        return self._changed

    # -- watch feed --------------------------------------------------------------------------

    def observe(self, lease: dict[str, Any]) -> None:
        """A watch event of our Lease: note the change, and react now if it matters."""
        if self._home is not None and not _running_on(self._home):
            self._home.call_soon_threadsafe(self.observe, lease)
            return
        version = _resource_version(lease)
        newest = self._newest_version
        if version is not None and newest is not None and version < newest:
            return  # older than what we read or wrote ourselves: the watch lags
        self._note(lease)
        holder = holder_of(lease)
        if self._leading:
            if not still_ours(holder, my_identity=self._writer.identity):
                with self._state:
                    self._lose("holder", holder)
                self._poke.set()
            return
        if self._stopping:
            return
        decision = verdict(
            holder,
            my_identity=self._writer.identity,
            my_revision=self._writer.revision,
            seen_unchanged_for=0.0,
        )
        if decision is not Verdict.WAIT:
            self._poke.set()  # released, or held by an older revision: act now

    # -- the loop --------------------------------------------------------------------------

    async def run_on(self, home: asyncio.AbstractEventLoop) -> None:
        """`run` on the loop `home` (another thread's); this loop waits on the gate."""
        self._home = home
        self._consumer = asyncio.get_running_loop()
        future = asyncio.run_coroutine_threadsafe(self.run(), home)
        try:
            await asyncio.wrap_future(future)
        finally:
            future.cancel()  # cancels the task on `home` too

    async def run(self) -> None:
        log.info(
            "leader election started",
            extra={"identity": self._writer.identity, "revision": self._writer.revision},
        )
        while not self._stopping:
            # Cleared before the step: a watch event during the step wakes the next one.
            self._poke.clear()
            wait = await self.step()
            await self.clock.wait_any(self._poke, within=wait)
            self.may_write()

    async def step(self) -> float:
        """Renew or try to acquire once; return how long to wait before the next step."""
        async with self._step_lock:
            if self._stopping:
                return self.lease.retry_period
            try:
                if self._leading:
                    await self._renew()
                else:
                    await self._try_acquire()
            except (KubeError, TimeoutError) as error:
                self._check_usable(error)
                return self._failed(error)
            self._unusable_since = None
            if self._failures:
                log.info("lease calls work again", extra={"failed_calls": self._failures})
                self._failures = 0
            return self._wait_leader(False) if self._leading else self._wait_standby()

    def _check_usable(self, error: BaseException) -> None:
        """Raise `LeaseUnusable` once the Lease has been unusable for UNUSABLE_AFTER."""
        missing_namespace = isinstance(error, NotFound) and "namespaces" in str(error)
        if not (isinstance(error, Forbidden) or missing_namespace):
            self._unusable_since = None
            return
        now = self.clock.monotonic()
        if self._unusable_since is None:
            self._unusable_since = now
        if now - self._unusable_since < UNUSABLE_AFTER:
            return
        where = f"{self.lease.namespace}/{self.lease.name}"
        if missing_namespace:
            raise LeaseUnusable(
                f"the operator's namespace {self.lease.namespace!r} does not exist; it holds "
                f"the Lease {where}: create it, or set POD_NAMESPACE to the namespace the "
                "operator runs in"
            ) from error
        raise LeaseUnusable(
            f"not allowed to use the Lease {where} ({error}): grant get, update and create "
            "on leases.coordination.k8s.io in that namespace (manifests/base/role.yaml)"
        ) from error

    def _failed(self, error: BaseException) -> float:
        """How long to wait after a failed Lease call; the first of an outage is logged."""
        self._failures += 1
        if self._failures == 1:
            log.warning(
                "lease calls failing; retrying with back-off",
                extra={"error": str(error) or "timeout"},
            )
        if self._leading and self.clock.monotonic() < self._deadline:
            # Still able to write: retry the renew soon enough to keep the Lease.
            return max(_MIN_WAIT, self._wait_leader(True))
        backoff: float = min(
            _MAX_BACKOFF, self.lease.retry_period * 2.0 ** min(self._failures - 1, 10)
        )
        return backoff * self.jitter.uniform(0.5, 1.0)

    async def release(self) -> None:
        """Give the Lease up (graceful shutdown) so a successor takes it at once."""
        if self._home is not None and not _running_on(self._home):
            with self._state:
                self._leading = False  # stop writing at once, before the hop
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.release(), self._home))
            self._signal(self._changed)
            return
        if self._stopping:
            return
        self._stopping = True
        self._poke.set()
        with self._state:
            was_leading = self._leading or self._deadline > self.clock.monotonic()
            # Stop writing before anything else: the scheduler checks the gate per write.
            self._leading = False
        self._signal(self._changed)
        async with self._step_lock:  # let an in-flight renew or acquire finish first
            for _ in range(_RELEASE_ATTEMPTS):
                try:
                    if await self._clear_holder():
                        log.info(
                            "lease released",
                            extra={
                                "identity": self._writer.identity,
                                "revision": self._writer.revision,
                            },
                        )
                        self._notify(LeadershipEvent.RELEASED, None)
                    elif was_leading:
                        log.info("lease already held by another: nothing to release")
                    return
                except Conflict:
                    continue  # written meanwhile (our own late renew): read again
                except (KubeError, TimeoutError) as error:
                    log.warning(
                        "could not release the lease", extra={"error": str(error) or "timeout"}
                    )
                    return
            log.warning("could not release the lease", extra={"error": "it kept changing"})

    # -- steps -------------------------------------------------------------------------------

    async def _clear_holder(self) -> bool:
        current = await self._api(self.gateway.read_lease(self.lease.namespace, self.lease.name))
        if current is None or not still_ours(holder_of(current), my_identity=self._writer.identity):
            return False
        spec = current.setdefault("spec", {})
        spec["holderIdentity"] = None
        spec["renewTime"] = None
        spec["acquireTime"] = None
        await self._api(self.gateway.replace_lease(self.lease.namespace, self.lease.name, current))
        return True

    async def _try_acquire(self) -> None:
        current = await self._api(self.gateway.read_lease(self.lease.namespace, self.lease.name))
        if current is not None:
            self._note(current)
        holder = holder_of(current)
        decision = verdict(
            holder,
            my_identity=self._writer.identity,
            my_revision=self._writer.revision,
            seen_unchanged_for=self.clock.monotonic() - self._seen_at,
        )
        if decision is Verdict.WAIT or self._stopping:
            return
        started = self.clock.monotonic()
        body = self._record(current, acquire=True)
        try:
            if current is None:
                written = await self._api(self.gateway.create_lease(self.lease.namespace, body))
            else:
                written = await self._api(
                    self.gateway.replace_lease(self.lease.namespace, self.lease.name, body)
                )
        except (Conflict, AlreadyExists):
            self._poke.set()  # someone else moved first: look again at once
            return
        self._note(written)
        with self._state:
            self._deadline = write_deadline(started, self.lease.duration_seconds)
            if not self._leading:
                self._term += 1
            self._leading = True
        self._signal(self._became_leader)
        self._signal(self._changed)
        previous = holder.identity if holder else None
        log.info(
            "lease acquired",
            extra={
                "identity": self._writer.identity,
                "revision": self._writer.revision,
                "how": decision.value,
                "previous": previous or "",
                "previous_revision": holder.revision if holder and previous else "",
            },
        )
        self._notify(LeadershipEvent.ACQUIRED, previous)

    async def _renew(self) -> None:
        started = self.clock.monotonic()
        current = await self._api(self.gateway.read_lease(self.lease.namespace, self.lease.name))
        holder = holder_of(current)
        if current is None or not still_ours(holder, my_identity=self._writer.identity):
            if current is not None:
                self._note(current)
            with self._state:
                self._lose("holder", holder)
            return
        try:
            written = await self._api(
                self.gateway.replace_lease(
                    self.lease.namespace, self.lease.name, self._record(current, acquire=False)
                )
            )
        except Conflict:
            # Changed under us: read again at once to learn whether we still hold it.
            self._poke.set()
            return
        self._note(written)
        with self._state:
            if self.may_write():
                self._deadline = write_deadline(started, self.lease.duration_seconds)

    async def _api(self, call: Awaitable[T]) -> T:
        # A call that hangs must not hold the loop past the next renew; fencing does not
        # depend on this (the deadline does), but recovery does.
        timeout = max(1.0, min(self.lease.renew_interval, self.lease.duration_seconds / 2))
        return await asyncio.wait_for(call, timeout=timeout)

    def _wait_leader(self, failed: bool) -> float:
        interval = self.lease.retry_period if failed else self.lease.renew_interval
        # Wake at the deadline at the latest, so a failing renew is noticed and reported.
        return max(0.0, min(interval, self._deadline - self.clock.monotonic()))

    def _wait_standby(self) -> float:
        holder = self._last_holder
        if holder is None or not holder.identity:
            return self.lease.retry_period
        # Wake just after the observed record would expire, not up to a period later.
        expires_in = self._seen_at + holder.duration_seconds - self.clock.monotonic()
        return max(0.0, min(self.lease.retry_period, expires_in + 0.05))

    def _record(self, current: dict[str, Any] | None, *, acquire: bool) -> dict[str, Any]:
        now = format_micro_time(self.clock.now())
        spec = dict((current or {}).get("spec") or {})
        metadata = dict((current or {}).get("metadata") or {})
        annotations = dict(metadata.get("annotations") or {})
        annotations[ANNOTATION_REVISION] = str(self._writer.revision)
        metadata.update(
            {
                "name": self.lease.name,
                "namespace": self.lease.namespace,
                "annotations": annotations,
            }
        )
        if acquire:
            transitions = int(spec.get("leaseTransitions") or 0)
            previous = spec.get("holderIdentity")
            changed_hands = bool(previous) and previous != self._writer.identity
            spec["leaseTransitions"] = transitions + (1 if changed_hands else 0)
            spec["acquireTime"] = now
        spec.update(
            {
                "holderIdentity": self._writer.identity,
                "leaseDurationSeconds": self.lease.duration_seconds,
                "renewTime": now,
            }
        )
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def _note(self, lease: dict[str, Any]) -> None:
        version = _resource_version(lease)
        if version is not None:
            self._newest_version = max(version, self._newest_version or version)
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
        self._last_holder = holder_of(lease)
        if record != self._last_record:
            self._last_record = record
            self._seen_at = self.clock.monotonic()

    def _lose(self, why: str, other: Holder | None) -> None:
        if not self._leading:
            return
        self._leading = False
        self._signal(self._changed)
        superseded = other is not None and other.revision > self._writer.revision
        event = LeadershipEvent.SUPERSEDED if superseded else LeadershipEvent.LOST
        identity = other.identity if other else None
        log.warning(
            "lease lost: stopped dispatching",
            extra={
                "identity": self._writer.identity,
                "revision": self._writer.revision,
                "why": "superseded" if superseded else why,
                "holder": identity or "",
                "holder_revision": other.revision if other and identity else "",
            },
        )
        self._notify(event, identity)

    def _notify(self, event: LeadershipEvent, other: str | None) -> None:
        if self.on_change is None:
            return
        if self._consumer is not None and not _running_on(self._consumer):
            self._consumer.call_soon_threadsafe(self.on_change, event, other)
        else:
            self.on_change(event, other)

    def _signal(self, event: asyncio.Event) -> None:
        """Set one of the gate's events, on the loop whose tasks wait on it."""
        if self._consumer is not None and not _running_on(self._consumer):
            self._consumer.call_soon_threadsafe(event.set)
        else:
            event.set()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
