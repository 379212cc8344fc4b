"""leadership_changes: each acquisition, supersession, loss and release of the lease

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "leadership_changes",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("identity", sa.String(253), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("other_identity", sa.String(253), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leadership_changes"),
        sa.UniqueConstraint(
            "identity", "event", "at", name="uq_leadership_changes_identity_event_at"
        ),
    )
    op.create_index("ix_leadership_changes_at", "leadership_changes", ["at"])


def downgrade() -> None:
    op.drop_index("ix_leadership_changes_at", table_name="leadership_changes")
    op.drop_table("leadership_changes")
