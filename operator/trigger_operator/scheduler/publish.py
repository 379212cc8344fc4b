"""Writing what the scheduler decided onto the trigger: its status and its Events.

Status goes in a merge patch with a resourceVersion precondition, so a writer holding a
stale copy gets `Conflict` and must re-read: the cursor never moves back. A patch that
went through also proves the copy current in the leadership term it was sent in. Nothing is
written unless the gate lets this replica write at that moment (fencing), and a status
that would not change is not written at all.
"""

from __future__ import annotations

from datetime import datetime

from trigger_operator.models.status import TriggerStatus
from trigger_operator.scheduler.cache import TriggerEntry, compact
from trigger_operator.scheduler.gate import Gate, require_leader
from trigger_operator.scheduler.ports import SchedulerGateway


class StatusPublisher:
    """Patches trigger status and records Events about triggers, while leading."""

    def __init__(self, *, gateway: SchedulerGateway, gate: Gate) -> None:
        self.gateway = gateway
        self.gate = gate

    async def write_status(
        self, entry: TriggerEntry, old: TriggerStatus, new: TriggerStatus, *, version: str
    ) -> str:
        """Patch `new` over `old` when they differ; the entry then holds the result.

        `version` is the resourceVersion `old` was read at, and the patch's precondition:
        not the version the entry holds when the patch leaves, which a watch event may
        have replaced meanwhile (another writer's status, which `new`, computed from
        `old`, would overwrite). Returns the version the trigger is at afterwards.
        """
        # Unset and null are the same to a reader (and to a merge patch), at any depth.
        if old.model_dump(mode="json", exclude_none=True) == new.model_dump(
            mode="json", exclude_none=True
        ):
            return version
        after = new.model_dump(mode="json")
        require_leader(self.gate)
        term = self.gate.term
        updated = await self.gateway.patch_trigger_status(
            entry.namespace, entry.name, resource_version=version, status=after
        )
        if updated["metadata"]["uid"] == entry.uid:
            entry.update(compact(updated))
            # The patch held the version its status was computed from as its precondition:
            # that copy was the API's, so the entry is fresh for this term (no read is
            # needed before a start).
            entry.fresh_term = term
            entry.written_version = str(updated["metadata"]["resourceVersion"])
        return str(updated["metadata"]["resourceVersion"])

    async def warn(self, entry: TriggerEntry, *, reason: str, message: str, now: datetime) -> None:
        """A Warning Event about the trigger (best effort; only while leading)."""
        if self.gate.may_write():
            await self.gateway.emit_event(
                namespace=entry.namespace,
                name=entry.name,
                uid=entry.uid,
                event_type="Warning",
                reason=reason,
                message=message,
                now=now,
            )
