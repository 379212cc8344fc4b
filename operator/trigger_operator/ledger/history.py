"""The ledger's runs for `trigger-operator history`, and pruning them by retention.

Returns the newest `limit` runs that match, oldest first (like `helm history`), so the most
recent run comes last; the command line renders them. Durations run from the Job's start
to its end (to now while it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from trigger_operator.clock import Clock
from trigger_operator.ledger.engine import build_engine, database_url, display_url, sqlite_file
from trigger_operator.ledger.records import LedgerStatus
from trigger_operator.ledger.store import LedgerStore, PruneResult, RunQuery
from trigger_operator.ledger.tables import Run
from trigger_operator.models.settings import Settings


class HistoryError(Exception):
    """The history cannot be shown; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class HistoryRequest:
    """What `history` was asked for. `namespace=None` means every namespace."""

    name: str | None = None
    namespace: str | None = None
    statuses: frozenset[LedgerStatus] = frozenset()
    since: datetime | None = None
    limit: int | None = 20


def duration_seconds(run: Run, *, now: datetime) -> float | None:
    """How long the run's Job ran (or has run so far); None if it never started."""
    if run.started_at is None:
        return None
    end = run.finished_at
    if end is None:
        if run.status is not LedgerStatus.RUNNING:
            return None
        end = now
    return max(0.0, (end - run.started_at).total_seconds())


def open_store(settings: Settings) -> LedgerStore:
    """The store of an existing, migrated ledger; `HistoryError` if there is none."""
    url = database_url(settings)
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise HistoryError(
            f"no ledger at {path}: set TRIGGER_OPERATOR_DATABASE_URL or "
            "TRIGGER_OPERATOR_SQLITE_PATH to the operator's database"
        )
    store = LedgerStore(build_engine(url))
    try:
        ready = store.ready()
    except SQLAlchemyError as error:
        store.close()
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise HistoryError(f"cannot read the ledger at {display_url(url)}: {reason}") from error
    if not ready:
        store.close()
        raise HistoryError(
            f"the ledger at {display_url(url)} has no tables yet: run `trigger-operator migrate`"
        )
    return store


def find_runs(settings: Settings, request: HistoryRequest) -> list[Run]:
    """The runs `request` asks for, oldest first."""
    store = open_store(settings)
    try:
        newest_first = store.runs(
            RunQuery(
                namespace=request.namespace,
                trigger_name=request.name,
                statuses=request.statuses,
                since=request.since,
                limit=request.limit,
            )
        )
    finally:
        store.close()
    return list(reversed(newest_first))


def prune_history(settings: Settings, *, clock: Clock) -> tuple[datetime, PruneResult]:
    """Delete what is older than the retention; returns the cut-off and the counts."""
    cutoff = clock.now() - timedelta(days=settings.ledger_retention_days)
    store = open_store(settings)
    try:
        return cutoff, store.prune(older_than=cutoff)
    finally:
        store.close()
