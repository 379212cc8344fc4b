"""The ledger's tables: one row per run, one row per leadership change.

The migrations in `migrations/` create exactly this schema; a test compares the two on
SQLite and PostgreSQL. Change both together.

Instants are stored in UTC. PostgreSQL keeps them as `timestamp with time zone`; SQLite,
which has no time zone type, as naive UTC text that still sorts in time order. Either way
they come back timezone-aware UTC, and a naive datetime is refused rather than guessed at.
Enumerations are stored as their lowercase values in plain strings (no native enum types),
so that adding a value later is a code change, not a schema migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from trigger_operator.ledger.records import (
    KEY_MAX_LENGTH,
    LeadershipEvent,
    LedgerStatus,
    RunKind,
)

E = TypeVar("E", bound=StrEnum)

# Deterministic constraint names on every backend, so migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"refusing a naive datetime: {value!r}")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[E]):
    """A `StrEnum` stored as its value in a plain VARCHAR."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


# A 64-bit id on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """One run of a trigger: a Job that was (or was not) started for one due time."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), unique=True)
    namespace: Mapped[str] = mapped_column(String(63))
    trigger_name: Mapped[str] = mapped_column(String(253))
    trigger_uid: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[RunKind] = mapped_column(EnumText(RunKind))
    job_name: Mapped[str | None] = mapped_column(String(63))
    job_uid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[LedgerStatus] = mapped_column(EnumText(LedgerStatus))
    reason: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str | None] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    leader_identity: Mapped[str | None] = mapped_column(String(253))
    leader_revision: Mapped[int | None] = mapped_column(Integer())
    # What the run got as TRIGGER_PAYLOAD (JSON text), for manual runs.
    payload: Mapped[str | None] = mapped_column(Text())

    __table_args__ = (
        # The latest runs of one trigger: `history NAME -n NS`.
        Index("ix_runs_trigger_latest", "namespace", "trigger_name", "scheduled_for"),
        # Runs by status in a time range: `history --status failed --since 24h`, dashboards.
        Index("ix_runs_status_scheduled_for", "status", "scheduled_for"),
        # Everything in a time range, newest first (`history -A`), and retention.
        Index("ix_runs_scheduled_for", "scheduled_for"),
    )

    def __repr__(self) -> str:
        return f"Run(key={self.key!r}, status={self.status.value!r})"


class LeadershipChange(Base):
    """One acquisition, supersession, loss or release of the scheduler's lease."""

    __tablename__ = "leadership_changes"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    event: Mapped[LeadershipEvent] = mapped_column(EnumText(LeadershipEvent))
    identity: Mapped[str] = mapped_column(String(253))
    revision: Mapped[int | None] = mapped_column(Integer())
    other_identity: Mapped[str | None] = mapped_column(String(253))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    # A replayed batch (a commit whose outcome was lost with the connection) adds nothing.
    __table_args__ = (UniqueConstraint("identity", "event", "at"),)

    def __repr__(self) -> str:
        return f"LeadershipChange(event={self.event.value!r}, identity={self.identity!r})"
