"""Engines for the ledger: a SQLite file by default, PostgreSQL through psycopg 3.

Built where the process starts (`build_engine(url)`), never at import. The URL comes from
`Settings.database_url` (`TRIGGER_OPERATOR_DATABASE_URL`, typically from a Secret) or,
when that is empty, a SQLite file at `Settings.sqlite_path`.

SQLite connections run in WAL mode (readers such as `trigger-operator history` never block
the writer), with foreign keys on and a busy timeout, so a second process waits for the
lock instead of failing at once. PostgreSQL connections are checked before use and time
out quickly on connect, so an outage surfaces as a fast, retryable error in the writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url

from trigger_operator.models.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 5_000
POSTGRES_CONNECT_TIMEOUT_S = 5


def database_url(settings: Settings) -> URL:
    """The ledger's URL from the settings, with the driver made explicit."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    path = Path(settings.sqlite_path).expanduser().resolve()
    return URL.create("sqlite+pysqlite", database=str(path))


def normalize_url(url: str | URL) -> URL:
    """Accept `postgres://` and `postgresql://` (as many Secrets spell them) for psycopg 3."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    return parsed


def display_url(url: URL) -> str:
    """`url` for logs and messages: the password masked."""
    return url.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for other backends and in-memory databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def build_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url`, configured for the ledger; `kwargs` go to `create_engine`."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        connect_args.update(kwargs.pop("connect_args", {}))
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    raise ValueError(f"unsupported ledger database {display_url(parsed)}: use sqlite or postgresql")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # With WAL, NORMAL is durable against application crashes; only a power loss can
        # lose the last transactions, which the reconcile from the cluster fills again.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
