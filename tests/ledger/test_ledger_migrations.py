"""The migrations build exactly the models' schema, and undo it, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect

from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import (
    HEAD,
    at_head,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
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


def test_head_names_the_newest_revision_of_the_scripts() -> None:
    assert head_revision() == HEAD


def test_only_a_database_at_the_head_is_told_at_head(empty: Engine) -> None:
    assert not at_head(empty)  # no version table yet
    upgrade(empty, "0002")
    assert not at_head(empty)
    upgrade(empty)
    assert at_head(empty)
    downgrade(empty, "-1")
    assert not at_head(empty)


def test_an_upgrade_at_the_head_loads_no_alembic(ledger_url: str) -> None:
    engine = build_engine(ledger_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    code = (
        "import sys\n"
        "from trigger_operator.ledger.engine import build_engine\n"
        "from trigger_operator.ledger.migrate import upgrade\n"
        f"engine = build_engine({ledger_url!r})\n"
        "upgrade(engine)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
