"""runs: one row per run of a trigger, keyed by its idempotency key

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("trigger_name", sa.String(253), nullable=False),
        sa.Column("trigger_uid", sa.String(64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_name", sa.String(63), nullable=True),
        sa.Column("job_uid", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("leader_identity", sa.String(253), nullable=True),
        sa.Column("leader_revision", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("key", name="uq_runs_key"),
    )
    op.create_index(
        "ix_runs_trigger_latest", "runs", ["namespace", "trigger_name", "scheduled_for"]
    )
    op.create_index("ix_runs_status_scheduled_for", "runs", ["status", "scheduled_for"])
    op.create_index("ix_runs_scheduled_for", "runs", ["scheduled_for"])


def downgrade() -> None:
    op.drop_index("ix_runs_scheduled_for", table_name="runs")
    op.drop_index("ix_runs_status_scheduled_for", table_name="runs")
    op.drop_index("ix_runs_trigger_latest", table_name="runs")
    op.drop_table("runs")
