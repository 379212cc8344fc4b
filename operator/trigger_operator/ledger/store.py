"""The ledger store: upserts of run records, leadership changes, history queries, pruning.

Synchronous, on a SQLAlchemy engine. The operator never calls it from the event loop: the
`LedgerWriter` drives it from its own thread. The command line reads through it directly.

A run record is written as one `INSERT ... ON CONFLICT (key) DO UPDATE`, atomic on both
SQLite and PostgreSQL, whose update applies the rule of `records.moves_forward` in SQL:
- the status changes only to a later rank, so replays and late or reordered writes never
  move a run back, and the first final status wins;
- reason and message come with an accepted status (equal or later), and otherwise stay;
- identity fields (kind, job name and uid, leader, payload), and started/finished times,
  keep their first value and are only filled in when still empty;
- attempts only grow; `updated_at` is the time of the latest observation.
So writing the same records again, in any order, leaves the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Insert,
    and_,
    case,
    delete,
    func,
    inspect,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from trigger_operator.ledger.migrate import upgrade
from trigger_operator.ledger.records import (
    OUTRUN_BY_SUCCESS,
    STATUS_RANK,
    KnownRun,
    LeadershipRecord,
    LedgerStatus,
    RunKind,
    RunRecord,
)
from trigger_operator.ledger.tables import Base, LeadershipChange, Run

_runs = Base.metadata.tables[Run.__tablename__]
_leadership = Base.metadata.tables[LeadershipChange.__tablename__]
_REASON_LENGTH = 128


@dataclass(frozen=True, kw_only=True)
class RunQuery:
    """Which runs `LedgerStore.runs` returns: the newest `limit` that match."""

    namespace: str | None = None
    trigger_name: str | None = None
    statuses: frozenset[LedgerStatus] = field(default_factory=frozenset)
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 20


@dataclass(frozen=True)
class PruneResult:
    """How many rows a prune deleted."""

    runs: int
    leadership_changes: int


class LedgerStore:
    """Reads and writes the ledger tables of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert = _upsert_statement(engine.dialect.name)
        self._append = _append_statement(engine.dialect.name)

    def migrate(self) -> None:
        """Bring the database to the newest schema."""
        upgrade(self.engine)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    def ready(self) -> bool:
        """Whether the ledger tables exist (the database has been migrated)."""
        names = set(inspect(self.engine).get_table_names())
        return {Run.__tablename__, LeadershipChange.__tablename__} <= names

    def write(
        self,
        runs: Sequence[RunRecord],
        leadership: Sequence[LeadershipRecord] = (),
    ) -> None:
        """Upsert `runs` and append `leadership` in one transaction.

        Records for the same run are applied in the order given. Every record must carry
        `observed_at`.
        """
        with self.engine.begin() as connection:
            for round_ in _rounds(runs):
                connection.execute(self._upsert, [_run_params(record) for record in round_])
            if leadership:
                connection.execute(
                    self._append,
                    [
                        {
                            "event": change.event,
                            "identity": change.identity,
                            "revision": change.revision,
                            "other_identity": change.other_identity,
                            "at": change.at,
                        }
                        for change in leadership
                    ],
                )

    def run(self, key: str) -> Run | None:
        """The row of the run with idempotency key `key`."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(Run).where(Run.key == key)).one_or_none()

    def runs(self, query: RunQuery) -> list[Run]:
        """The newest runs matching `query`, newest first."""
        statement = select(Run)
        if query.namespace is not None:
            statement = statement.where(Run.namespace == query.namespace)
        if query.trigger_name is not None:
            statement = statement.where(Run.trigger_name == query.trigger_name)
        if query.statuses:
            statement = statement.where(Run.status.in_(sorted(query.statuses)))
        if query.since is not None:
            statement = statement.where(Run.scheduled_for >= query.since)
        if query.until is not None:
            statement = statement.where(Run.scheduled_for < query.until)
        statement = statement.order_by(Run.scheduled_for.desc(), Run.id.desc())
        if query.limit is not None:
            statement = statement.limit(query.limit)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(statement))

    def scheduled_runs(
        self, trigger_uid: str, *, since: datetime, until: datetime
    ) -> list[KnownRun]:
        """What the ledger holds of the trigger's scheduled times in [since, until]."""
        statement = (
            select(Run.scheduled_for, Run.status, Run.kind)
            .where(Run.trigger_uid == trigger_uid)
            .where(Run.kind != RunKind.MANUAL)
            .where(Run.scheduled_for >= since, Run.scheduled_for <= until)
        )
        with Session(self.engine) as session:
            return [
                KnownRun(scheduled_for=row[0], status=row[1], kind=row[2])
                for row in session.execute(statement)
            ]

    def count_runs(self) -> int:
        """How many runs the ledger holds."""
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(_runs)).scalar_one()

    def leadership_changes(self, *, limit: int | None = 50) -> list[LeadershipChange]:
        """The newest leadership changes, newest first."""
        statement = select(LeadershipChange).order_by(
            LeadershipChange.at.desc(), LeadershipChange.id.desc()
        )
        if limit is not None:
            statement = statement.limit(limit)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(statement))

    def prune(self, *, older_than: datetime) -> PruneResult:
        """Delete runs scheduled, and leadership changes made, before `older_than`."""
        with self.engine.begin() as connection:
            runs = connection.execute(delete(_runs).where(_runs.c.scheduled_for < older_than))
            changes = connection.execute(delete(_leadership).where(_leadership.c.at < older_than))
        return PruneResult(runs=runs.rowcount, leadership_changes=changes.rowcount)


def _rounds(records: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """Split `records` so that no key occurs twice in one round, keeping per-key order.

    One multi-row upsert may not touch the same row twice (PostgreSQL refuses it), and the
    order of writes to one run matters for the fields that keep their first value. Each
    round is sorted by key, so concurrent writers lock rows in the same order.
    """
    by_key: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_key[record.ref.key].append(record)
    rounds: list[list[RunRecord]] = []
    for key in sorted(by_key):
        for depth, record in enumerate(by_key[key]):
            if depth == len(rounds):
                rounds.append([])
            rounds[depth].append(record)
    return rounds


def _run_params(record: RunRecord) -> dict[str, Any]:
    if record.observed_at is None:
        raise ValueError(f"run record {record.ref.key!r} has no observed_at")
    ref = record.ref
    reason = record.reason[:_REASON_LENGTH] if record.reason else record.reason
    return {
        "key": ref.key,
        "namespace": ref.namespace,
        "trigger_name": ref.trigger_name,
        "trigger_uid": ref.trigger_uid,
        "scheduled_for": ref.scheduled_for,
        "kind": ref.kind,
        "job_name": ref.job_name,
        "job_uid": record.job_uid,
        "status": record.status,
        "reason": reason,
        "message": record.message,
        "created_at": record.observed_at,
        "updated_at": record.observed_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "attempts": record.attempts,
        "leader_identity": record.leader_identity,
        "leader_revision": record.leader_revision,
        "payload": record.payload,
    }


def _rank(status: ColumnElement[Any]) -> ColumnElement[int]:
    # Inline constants, not bound parameters: executemany would otherwise process these
    # fourteen values again for every row.
    return case(
        *(
            (status == literal_column(f"'{value.value}'"), literal_column(str(rank)))
            for value, rank in STATUS_RANK.items()
        ),
        else_=literal_column("-1"),
    )


def _dialect_insert(dialect: str) -> Any:
    # Each dialect's module only where it is used: PostgreSQL's is 2 MiB of a process
    # that writes to SQLite.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert
    raise ValueError(f"the ledger supports sqlite and postgresql, not {dialect}")


def _append_statement(dialect: str) -> Insert:
    statement = _dialect_insert(dialect)(_leadership)
    columns = _leadership.c
    insert: Insert = statement.on_conflict_do_nothing(
        index_elements=[columns.identity, columns.event, columns.at]
    )
    return insert


def _upsert_statement(dialect: str) -> Insert:
    statement = _dialect_insert(dialect)(_runs)
    old = _runs.c
    new = statement.excluded
    outrun = and_(
        new.status == literal_column(f"'{LedgerStatus.SUCCEEDED.value}'"),
        old.status.in_([literal_column(f"'{s.value}'") for s in sorted(OUTRUN_BY_SUCCESS)]),
    )
    # records.revives: a backfill's run of a missed time takes the row over.
    revived = and_(
        old.status == literal_column(f"'{LedgerStatus.MISSED.value}'"),
        new.kind == literal_column(f"'{RunKind.BACKFILL.value}'"),
    )
    outrun = or_(outrun, revived)
    advances = or_(_rank(new.status) > _rank(old.status), outrun)
    accepted = or_(advances, new.status == old.status)

    def first(name: str) -> ColumnElement[Any]:
        return func.coalesce(old[name], new[name])

    def with_status(name: str) -> ColumnElement[Any]:
        # A success that outruns a decision takes its own reason (none) with it.
        return case(
            (outrun, new[name]),
            (accepted, func.coalesce(new[name], old[name])),
            else_=old[name],
        )

    upsert: Insert = statement.on_conflict_do_update(
        index_elements=[old.key],
        set_={
            "status": case((advances, new.status), else_=old.status),
            "kind": case((revived, new.kind), else_=old.kind),
            "reason": with_status("reason"),
            "message": with_status("message"),
            "job_name": first("job_name"),
            "job_uid": first("job_uid"),
            "leader_identity": first("leader_identity"),
            "leader_revision": first("leader_revision"),
            "payload": first("payload"),
            "started_at": first("started_at"),
            "finished_at": first("finished_at"),
            "attempts": case((new.attempts > old.attempts, new.attempts), else_=old.attempts),
            "updated_at": case(
                (new.updated_at > old.updated_at, new.updated_at), else_=old.updated_at
            ),
        },
    )
    return upsert
