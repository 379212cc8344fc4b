"""Schema migrations: Alembic, driven from code with the ledger's own engine.

`upgrade(engine)` brings a database to the newest revision; `trigger-operator migrate`
and the operator's start-up (when `Settings.migrate_on_start`) both call it. On
PostgreSQL it holds an advisory lock while it runs, so that replicas starting together
migrate one after the other instead of racing on the same DDL.

The revision scripts live in `migrations/` at the top of the source tree (see
`migrations_dir` for where else they are looked for). Alembic's own
command line works there too (`alembic upgrade head`, with `alembic.ini`), and takes its
URL from the same settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from trigger_operator.ledger.engine import build_engine, database_url, display_url
from trigger_operator.models.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: the operator migrates from its ledger thread,
# after it has started dispatching, and most processes (the command line) never do. A
# database already at `HEAD` is told by one query, without Alembic (11 MiB of modules
# that would stay loaded in the operator for nothing).

#: The newest revision of `migrations/versions/` (a test keeps it equal to Alembic's head).
HEAD = "0003"

# Any fixed 64-bit number; it names the lock, and only this code takes it.
_MIGRATION_LOCK = 0x7472_6967_6C65_6467  # "trigledg"

_SOURCE_TREE_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def migrations_dir(explicit: Path | None = None) -> Path:
    """Where the revision scripts are.

    `explicit` when given; else `migrations/` of the source tree the package runs from;
    else `migrations/` in the working directory (an image that installs the package
    elsewhere keeps the directory there).
    """
    candidates = (
        [explicit]
        if explicit is not None
        else [
            _SOURCE_TREE_MIGRATIONS,
            Path.cwd() / "migrations",
        ]
    )
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        "no Alembic migrations (migrations/env.py) in " + " or ".join(str(c) for c in candidates)
    )


def alembic_config(connection: Connection | None = None, *, scripts: Path | None = None) -> Config:
    """An Alembic configuration for the ledger, bound to `connection` when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir(scripts)))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision(*, scripts: Path | None = None) -> str | None:
    """The newest revision of the scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(scripts=scripts)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def at_head(engine: Engine) -> bool:
    """Whether the database is at `HEAD` already, asked without Alembic."""
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in versions] == [HEAD]
    except (OperationalError, ProgrammingError):
        return False  # never migrated: no version table


def upgrade(engine: Engine, revision: str = "head", *, scripts: Path | None = None) -> None:
    """Migrate the database of `engine` up to `revision` (idempotent at the head)."""
    if revision == "head" and scripts is None and at_head(engine):
        return
    from alembic import command

    with _locked(engine) as connection:
        command.upgrade(alembic_config(connection, scripts=scripts), revision)
        connection.commit()


def downgrade(engine: Engine, revision: str, *, scripts: Path | None = None) -> None:
    """Migrate the database of `engine` down to `revision` (`base` drops every table)."""
    from alembic import command

    with _locked(engine) as connection:
        command.downgrade(alembic_config(connection, scripts=scripts), revision)
        connection.commit()


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            # A session-level lock: it outlasts the transactions Alembic commits.
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            connection.commit()
        try:
            yield connection
        finally:
            if postgres and not connection.invalidated:
                connection.rollback()
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK}
                )
                connection.commit()


@dataclass(frozen=True)
class MigrationReport:
    """What `migrate_database` did: the database (password masked) and its revisions."""

    database: str
    before: str | None
    after: str | None


class MigrationFailed(RuntimeError):
    """The database could not be reached or migrated; the message names it (no password)."""


def migrate_database(settings: Settings) -> MigrationReport:
    """Upgrade the ledger database that `settings` name to the newest revision."""
    url = database_url(settings)
    engine = build_engine(url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        return MigrationReport(display_url(url), before, current_revision(engine))
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        raise MigrationFailed(
            f"cannot migrate the ledger at {display_url(url)}: {reason}"
        ) from error
    finally:
        engine.dispose()
