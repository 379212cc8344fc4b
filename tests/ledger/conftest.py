"""Fixtures for the ledger tests: each runs on a SQLite file and on a real PostgreSQL.

`ledger_url` is parametrized over both backends; the PostgreSQL case is marked `postgres`
and gets a fresh database from the throwaway server of `tests.fixtures.postgres`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import upgrade
from trigger_operator.ledger.records import RunKind, RunRef
from trigger_operator.ledger.store import LedgerStore

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
UID = "3c5d7e9f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"


def pytest_configure(config: pytest.Config) -> None:
    # The top-level conftest may register the PostgreSQL plugin already; this keeps
    # `pytest tests/ledger` working on its own. Registering twice is a no-op.
    config.pluginmanager.import_plugin("tests.fixtures.postgres")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+pysqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    """A migrated ledger database."""
    engine = build_engine(ledger_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> LedgerStore:
    return LedgerStore(engine)


def run_ref(
    n: int = 0,
    *,
    trigger: str = "nightly",
    namespace: str = "team-a",
    uid: str = UID,
    kind: RunKind = RunKind.SCHEDULED,
) -> RunRef:
    """The run of `trigger` at START + n minutes."""
    return RunRef.scheduled(
        namespace=namespace,
        trigger_name=trigger,
        trigger_uid=uid,
        scheduled_for=START + timedelta(minutes=n),
        kind=kind,
        job_name=f"{trigger}-{n}",
    )
