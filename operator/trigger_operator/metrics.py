"""Prometheus metrics of the operator, served on `/metrics` beside `/healthz`.

Metrics live in a registry passed in (the default one in production) so tests can
read them without global state leaking between cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RunOutcome(StrEnum):
    """The `result` label of `trigger_operator_runs_total`."""

    STARTED = "started"
    SKIPPED = "skipped"
    MISSED = "missed"
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    """The API server refused the Job create (400/422): nothing was started."""


class TriggerState(StrEnum):
    """The `state` label of `trigger_operator_triggers`: one state per trigger."""

    SCHEDULED = "scheduled"
    IDLE = "idle"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    INVALID = "invalid"


class DropReason(StrEnum):
    """The `reason` label of `trigger_operator_ledger_dropped_writes_total`."""

    QUEUE_FULL = "queue_full"
    """The queue was full: the oldest waiting record was dropped."""
    REJECTED = "rejected"
    """The database refused the record itself (integrity or data error)."""
    CLOSED = "closed"
    """Recorded after the writer stopped."""


@dataclass(frozen=True)
class Metrics:
    """Every metric the operator exports."""

    dispatch_lateness: Histogram
    runs: Counter
    missed_runs: Counter
    leader: Gauge
    lease_transitions: Counter
    triggers: Gauge
    failure_suspensions: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        return cls(
            dispatch_lateness=Histogram(
                "trigger_operator_dispatch_lateness_seconds",
                "Seconds between a run's due time (scheduled time plus jitter) and its Job create.",
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
                registry=registry,
            ),
            runs=Counter(
                "trigger_operator_runs_total",
                f"Runs by result: {', '.join(RunOutcome)}.",
                ["result"],
                registry=registry,
            ),
            missed_runs=Counter(
                "trigger_operator_missed_runs_total",
                "Scheduled times that were not started (catch-up policy or deadline).",
                registry=registry,
            ),
            leader=Gauge(
                "trigger_operator_leader",
                "1 while this replica holds the scheduling lease, else 0.",
                registry=registry,
            ),
            lease_transitions=Counter(
                "trigger_operator_lease_transitions_total",
                "Times this replica acquired or lost the scheduling lease.",
                # Values: trigger_operator.models.leadership.LeadershipEvent.
                ["event"],
                registry=registry,
            ),
            triggers=Gauge(
                "trigger_operator_triggers",
                "Triggers known to this replica, by state.",
                ["state"],
                registry=registry,
            ),
            failure_suspensions=Counter(
                "trigger_operator_failure_suspensions_total",
                "Times a trigger was suspended after repeated failed runs (spec.failurePolicy).",
                registry=registry,
            ),
        )
