"""The Lease elector: one scheduler at a time, the newest revision first.

Runs as a task beside the scheduler and answers the scheduler's gate (`may_write`,
`writer`, `wait_until_leader`, `changed`). Every write to the Lease carries the
resourceVersion it read, so two replicas racing for it cannot both win. Watch events
of the Lease (fed by the kopf handlers through `observe`) make a standby react to a
release, and a leader to a supersession, at once; a poll every retry period covers a
missed event.

A leader that cannot renew before its local deadline, or reads another holder, stops
writing immediately and becomes a standby that may lead again. On shutdown the leader
releases the Lease, so its successor need not wait for expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import ANNOTATION_REVISION, Writer
from trigger_operator.kube.gateway import AlreadyExists, Conflict, KubeError, KubeGateway
from trigger_operator.leadership.decisions import (
    Holder,
    Verdict,
    still_ours,
    verdict,
    write_deadline,
)
from trigger_operator.models.instants import format_instant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    duration: float = 15.0
    renew_interval: float = 5.0
    retry_period: float = 2.0


LeadershipListener = Callable[[str, str | None], None]
"""Called with (event, other identity) on acquired / superseded / lost / released."""


def _holder(lease: dict[str, Any] | None) -> Holder | None:
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


def _micro_time(instant: datetime) -> str:
    # Lease times are MicroTime: RFC 3339 with exactly six fractional digits.
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Holds, renews, supersedes and releases the scheduling Lease."""

    def __init__(
        self,
        gateway: KubeGateway,
        *,
        lease: LeaseSettings,
        writer: Writer,
        clock: Clock,
        on_change: LeadershipListener | None = None,
    ) -> None:
        self.gateway = gateway
        self.lease = lease
        self._writer = writer
        self.clock = clock
        self.on_change = on_change
        self._leading = False
        self._deadline = 0.0
        self._last_record: tuple[Any, ...] | None = None
        self._seen_at = 0.0
        self._became_leader = asyncio.Event()
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()
        self._stopping = False

    # -- the gate ----------------------------------------------------------------------

    def may_write(self) -> bool:
        if self._leading and self.clock.monotonic() >= self._deadline:
            self._lose("deadline", None)
        return self._leading

    @property
    def writer(self) -> Writer:
        return self._writer

    async def wait_until_leader(self) -> None:
        while not self.may_write():
            self._became_leader.clear()
            await self._became_leader.wait()

    def changed(self) -> asyncio.Event:
        return self._changed

    # -- watch feed --------------------------------------------------------------------------

    def observe(self, lease: dict[str, Any]) -> None:
        """A watch event of our Lease: note the change, and react now if it matters."""
        self._note(lease)
        holder = _holder(lease)
        if self._leading and not still_ours(holder, my_identity=self._writer.identity):
            self._lose("superseded", holder.identity if holder else None)
        self._poke.set()

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        log.info(
            "leader election started",
            extra={"identity": self._writer.identity, "revision": self._writer.revision},
        )
        while not self._stopping:
            try:
                if self._leading:
                    await self._renew()
                    wait = self.lease.renew_interval
                else:
                    await self._try_acquire()
                    wait = self.lease.renew_interval if self._leading else self.lease.retry_period
            except KubeError as error:
                log.warning("lease call failed", extra={"error": str(error)})
                wait = self.lease.retry_period
            # Re-check the deadline while waiting, so fencing does not wait for a renew.
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=wait)
            self.may_write()

    async def release(self) -> None:
        """Give the Lease up (graceful shutdown) so a successor takes it at once."""
        self._stopping = True
        self._poke.set()
        if not self._leading:
            return
        self._leading = False
        self._changed.set()
        try:
            current = await self.gateway.read_lease(self.lease.namespace, self.lease.name)
            if current is None or not still_ours(
                _holder(current), my_identity=self._writer.identity
            ):
                return
            current["spec"]["holderIdentity"] = None
            current["spec"]["renewTime"] = None
            current["spec"]["acquireTime"] = None
            await self.gateway.replace_lease(self.lease.namespace, self.lease.name, current)
            self._notify("released", None)
        except KubeError as error:
            log.warning("could not release the lease", extra={"error": str(error)})

    # -- steps -------------------------------------------------------------------------------

    async def _try_acquire(self) -> None:
        current = await self.gateway.read_lease(self.lease.namespace, self.lease.name)
        if current is not None:
            self._note(current)
        holder = _holder(current)
        decision = verdict(
            holder,
            my_identity=self._writer.identity,
            my_revision=self._writer.revision,
            seen_unchanged_for=self.clock.monotonic() - self._seen_at,
        )
        if decision is Verdict.WAIT:
            return
        started = self.clock.monotonic()
        now = format_instant(self.clock.now())
        body = self._record(current, acquire=True)
        try:
            if current is None:
                written = await self.gateway.create_lease(self.lease.namespace, body)
            else:
                written = await self.gateway.replace_lease(
                    self.lease.namespace, self.lease.name, body
                )
        except (Conflict, AlreadyExists):
            return  # someone else moved first; look again next period
        self._note(written)
        self._deadline = write_deadline(started, self.lease.duration)
        self._leading = True
        self._became_leader.set()
        self._changed.set()
        previous = holder.identity if holder else None
        log.info(
            "lease acquired",
            extra={
                "identity": self._writer.identity,
                "revision": self._writer.revision,
                "how": decision.value,
                "previous": previous or "",
                "previous_revision": holder.revision if holder else "",
                "at": now,
            },
        )
        self._notify("acquired", previous)

    async def _renew(self) -> None:
        started = self.clock.monotonic()
        current = await self.gateway.read_lease(self.lease.namespace, self.lease.name)
        holder = _holder(current)
        if current is None or not still_ours(holder, my_identity=self._writer.identity):
            self._lose("superseded", holder.identity if holder else None)
            return
        try:
            written = await self.gateway.replace_lease(
                self.lease.namespace, self.lease.name, self._record(current, acquire=False)
            )
        except Conflict:
            # Changed under us: read again at once to learn whether we still hold it.
            self._poke.set()
            return
        self._note(written)
        if self.may_write():
            self._deadline = write_deadline(started, self.lease.duration)

    def _record(self, current: dict[str, Any] | None, *, acquire: bool) -> dict[str, Any]:
        now = _micro_time(self.clock.now())
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
            spec["leaseTransitions"] = transitions + (1 if spec.get("holderIdentity") else 0)
            spec["acquireTime"] = now
        spec.update(
            {
                "holderIdentity": self._writer.identity,
                "leaseDurationSeconds": max(1, round(self.lease.duration)),
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
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
        if record != self._last_record:
            self._last_record = record
            self._seen_at = self.clock.monotonic()

    def _lose(self, why: str, other: str | None) -> None:
        if not self._leading:
            return
        self._leading = False
        self._changed.set()
        log.warning(
            "lease lost: stopped dispatching",
            extra={
                "identity": self._writer.identity,
                "revision": self._writer.revision,
                "why": why,
                "holder": other or "",
            },
        )
        self._notify("superseded" if why == "superseded" else "lost", other)

    def _notify(self, event: str, other: str | None) -> None:
        if self.on_change is not None:
            self.on_change(event, other)
