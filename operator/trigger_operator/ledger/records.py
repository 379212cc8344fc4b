"""What the ledger records, as plain data: run identities, run records, leadership changes.

This module is pure (no database, no clock): it defines the vocabulary that the scheduler,
the Job watch and the store share, the idempotency key of a run, and the one rule that
keeps the ledger consistent under replays and reordering: a run's status only moves
forward, `pending -> running -> a final status`, and a final status is never replaced.

Every write carries the full identity of its run (`RunRef`), so any single record, in any
order, is enough to create the run's row: a dropped or late `pending` never leaves an
orphaned `succeeded`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NewType

from trigger_operator.models.instants import format_instant
from trigger_operator.models.leadership import LeadershipEvent as LeadershipEvent
from trigger_operator.models.runs import RunKind as RunKind

RunKey = NewType("RunKey", str)
"""The idempotency key of a run: one row per key, however often it is written."""

# Run-now values are free text; longer ones are hashed so that every key fits its column.
_MAX_RUN_NOW_VALUE = 128
KEY_MAX_LENGTH = 255


class LedgerStatus(StrEnum):
    """Where a run is in its life, as its ledger row says (see `STATUS_RANK` for the order).

    Not to be confused with `models.status.RunResult`, the result a trigger's status shows
    for its last run, nor with `jobs.state.ObservedJob`, a Job as the watch reports it.
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    MISSED = "missed"
    CANCELLED = "cancelled"


STATUS_RANK: dict[LedgerStatus, int] = {
    LedgerStatus.PENDING: 0,
    LedgerStatus.RUNNING: 1,
    LedgerStatus.SUCCEEDED: 2,
    LedgerStatus.FAILED: 2,
    LedgerStatus.SKIPPED: 2,
    LedgerStatus.MISSED: 2,
    LedgerStatus.CANCELLED: 2,
}
"""Higher ranks are later in a run's life; all final statuses share the highest rank."""

FINAL_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == 2)

OUTRUN_BY_SUCCESS = frozenset({LedgerStatus.CANCELLED, LedgerStatus.MISSED, LedgerStatus.SKIPPED})
"""Final statuses that a later `succeeded` replaces: they record a decision (to stop, or
not to start, a run), and a Job that then completed shows that the run did run to the end
(it finished as Replace deleted it, say). A Job's own `succeeded` and `failed` are facts,
and the first of them stays."""


def moves_forward(
    current: LedgerStatus, new: LedgerStatus, *, new_kind: RunKind | None = None
) -> bool:
    """Whether a run in `current` may change to `new`.

    Only to a strictly later rank: a replayed or late `pending` never undoes `running`, and
    the first final status wins (`succeeded` never becomes `failed`, nor the reverse) —
    except that `succeeded` replaces a decision recorded before it (`OUTRUN_BY_SUCCESS`),
    and that a backfill's run of a `missed` time starts that time's row afresh (`revives`).
    """
    if new is LedgerStatus.SUCCEEDED and current in OUTRUN_BY_SUCCESS:
        return True
    if revives(current, new_kind):
        return True
    return STATUS_RANK[new] > STATUS_RANK[current]


def revives(current: LedgerStatus, new_kind: RunKind | None) -> bool:
    """Whether a record of kind `new_kind` replaces a row in `current`, whatever its status.

    A `missed` time that a backfill starts did run after all: its row becomes the run's
    (status, reason and kind `backfill`), one row per scheduled time as ever.
    """
    return current is LedgerStatus.MISSED and new_kind is RunKind.BACKFILL


def next_status(current: LedgerStatus, new: LedgerStatus) -> LedgerStatus:
    """The status a run in `current` has after a write of `new`."""
    return new if moves_forward(current, new) else current


def attempts_for(status: LedgerStatus, *, failed_pods: int) -> int:
    """How many pods a run has used, from its Job's `.status.failed` count.

    Every failed pod is one attempt; a running or succeeded run also counts the pod that is
    running or has succeeded. So a run that failed twice and then succeeded shows 3.
    """
    if failed_pods < 0:
        raise ValueError(f"failed_pods must be >= 0, got {failed_pods}")
    extra = 1 if status in (LedgerStatus.RUNNING, LedgerStatus.SUCCEEDED) else 0
    return failed_pods + extra


def _utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {instant!r}")
    return instant.astimezone(UTC)


def _check_uid(trigger_uid: str) -> None:
    if not trigger_uid or "/" in trigger_uid or len(trigger_uid) > 64:
        raise ValueError(f"not a Kubernetes uid: {trigger_uid!r}")


def scheduled_run_key(trigger_uid: str, scheduled_for: datetime) -> RunKey:
    """The key of the run of trigger `trigger_uid` at `scheduled_for` (scheduled or catch-up).

    The same instant in any time zone gives the same key.
    """
    _check_uid(trigger_uid)
    return RunKey(f"{trigger_uid}/{format_instant(scheduled_for)}")


def manual_run_key(trigger_uid: str, run_now_value: str) -> RunKey:
    """The key of the manual run that the `triggers.dev/run-now` value `run_now_value` asked for.

    Long values, or values with control characters, are replaced by their SHA-256.
    """
    _check_uid(trigger_uid)
    if not run_now_value:
        raise ValueError("a run-now value must not be empty")
    value = run_now_value
    if len(value) > _MAX_RUN_NOW_VALUE or not value.isprintable():
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return RunKey(f"{trigger_uid}/run-now/{value}")


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRef:
    """Who a run is: everything needed to create its row from any one write."""

    key: RunKey
    namespace: str
    trigger_name: str
    trigger_uid: str
    scheduled_for: datetime
    kind: RunKind
    job_name: str | None = None

    def __post_init__(self) -> None:
        if len(self.key) > KEY_MAX_LENGTH:
            raise ValueError(f"run key longer than {KEY_MAX_LENGTH}: {self.key!r}")
        object.__setattr__(self, "scheduled_for", _utc(self.scheduled_for, "scheduled_for"))

    @classmethod
    def scheduled(
        cls,
        *,
        namespace: str,
        trigger_name: str,
        trigger_uid: str,
        scheduled_for: datetime,
        kind: RunKind = RunKind.SCHEDULED,
        job_name: str | None = None,
    ) -> RunRef:
        """A run for a scheduled time (`kind` is `scheduled` or `catch-up`)."""
        if kind is RunKind.MANUAL:
            raise ValueError("manual runs are keyed by their run-now value: use RunRef.manual")
        return cls(
            key=scheduled_run_key(trigger_uid, scheduled_for),
            namespace=namespace,
            trigger_name=trigger_name,
            trigger_uid=trigger_uid,
            scheduled_for=scheduled_for,
            kind=kind,
            job_name=job_name,
        )

    @classmethod
    def manual(
        cls,
        *,
        namespace: str,
        trigger_name: str,
        trigger_uid: str,
        run_now_value: str,
        requested_at: datetime,
        job_name: str | None = None,
    ) -> RunRef:
        """A manual run; its `scheduled_for` is when it was asked for."""
        return cls(
            key=manual_run_key(trigger_uid, run_now_value),
            namespace=namespace,
            trigger_name=trigger_name,
            trigger_uid=trigger_uid,
            scheduled_for=requested_at,
            kind=RunKind.MANUAL,
            job_name=job_name,
        )

    def log_context(self) -> dict[str, str]:
        """The correlation fields for a log line about this run."""
        return {
            "namespace": self.namespace,
            "trigger": self.trigger_name,
            "uid": self.trigger_uid,
            "scheduled_for": format_instant(self.scheduled_for),
            "job": self.job_name or "",
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    """One observation of a run, written as an upsert keyed by `ref.key`.

    Fields left `None` keep what the row already has. `observed_at` is when the observation
    was made (the writer stamps it from its clock when it is missing); it becomes the row's
    `created_at` on insert and `updated_at` on every write.
    """

    ref: RunRef
    status: LedgerStatus
    job_uid: str | None = None
    reason: str | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    leader_identity: str | None = None
    leader_revision: int | None = None
    observed_at: datetime | None = None
    payload: str | None = None
    """The TRIGGER_PAYLOAD the run was given (JSON text); recorded for manual runs."""

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError(f"attempts must be >= 0, got {self.attempts}")
        for name in ("started_at", "finished_at", "observed_at"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc(value, name))


@dataclass(frozen=True, kw_only=True, slots=True)
class LeadershipRecord:
    """One leadership change (see `LeadershipEvent` for what each event means)."""

    event: LeadershipEvent
    identity: str
    revision: int | None
    at: datetime
    other_identity: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at, "at"))


@dataclass(frozen=True, kw_only=True, slots=True)
class KnownRun:
    """What the ledger holds about one scheduled time (for a backfill's plan)."""

    scheduled_for: datetime
    status: LedgerStatus
    kind: RunKind
