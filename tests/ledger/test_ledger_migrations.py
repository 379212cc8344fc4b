"""The migrations build exactly the models' schema, and undo it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect

from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import current_revision, downgrade, head_revision, upgrade
from trigger_operator.ledger.tables import Base


@pytest.fixture
def empty(ledger_url: str) -> Iterator[Engine]:
    """A database that was never migrated."""
    engine = build_engine(ledger_url)
    yield engine
    engine.dispose()


def drift(engine: Engine, metadata: MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def test_the_migrated_schema_equals_the_models(empty: Engine) -> None:
    upgrade(empty)
    assert current_revision(empty) == head_revision()
    assert drift(empty, Base.metadata) == []


def test_the_drift_check_would_see_a_column_the_migrations_lack(empty: Engine) -> None:
    upgrade(empty)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["runs"].append_column(Column("extra", Integer()))
    assert [diff[0] for diff in drift(empty, changed)] == ["add_column"]


def test_upgrading_twice_changes_nothing(empty: Engine) -> None:
    upgrade(empty)
    upgrade(empty)
    assert drift(empty, Base.metadata) == []


def test_downgrade_to_base_removes_every_ledger_table_and_upgrade_restores_them(
    empty: Engine,
) -> None:
    upgrade(empty)
    downgrade(empty, "base")
    assert set(inspect(empty).get_table_names()) <= {"alembic_version"}
    assert current_revision(empty) is None
    upgrade(empty)
    assert drift(empty, Base.metadata) == []


def test_each_revision_downgrades_on_its_own(empty: Engine) -> None:
    upgrade(empty)
    downgrade(empty, "-1")
    assert "payload" not in {column["name"] for column in inspect(empty).get_columns("runs")}
    assert "leadership_changes" in inspect(empty).get_table_names()
    downgrade(empty, "-1")
    assert "leadership_changes" not in inspect(empty).get_table_names()
    assert "runs" in inspect(empty).get_table_names()
    downgrade(empty, "-1")
    assert "runs" not in inspect(empty).get_table_names()
