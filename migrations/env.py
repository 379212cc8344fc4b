"""Alembic environment for the run ledger.

The URL comes from the operator's settings (`TRIGGER_OPERATOR_DATABASE_URL`, else the SQLite
file at `TRIGGER_OPERATOR_SQLITE_PATH`), or from `sqlalchemy.url` when alembic.ini sets one.
Code that already holds a connection (`trigger_operator.ledger.migrate`) passes it in
`config.attributes["connection"]`, and this file then uses it as it is.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from trigger_operator.ledger.engine import build_engine, database_url, normalize_url
from trigger_operator.ledger.tables import Base
from trigger_operator.models.settings import Settings

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    configured = config.get_main_option("sqlalchemy.url")
    url = normalize_url(configured) if configured else database_url(Settings())
    return url.render_as_string(hide_password=False)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = build_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
