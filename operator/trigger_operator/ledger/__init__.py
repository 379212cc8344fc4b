"""The run ledger: a SQL record of every run and leadership change that outlives Jobs.

The operator opens it at start-up with `open_ledger(settings, clock=...)`, reports runs
through the returned `LedgerWriter` (non-blocking; written from its own thread), and stops
it with `await writer.aclose()`. `trigger-operator history` reads it through `LedgerStore`;
`trigger-operator migrate` runs `upgrade`.
"""

import importlib
from typing import Any

# Loaded on first use (PEP 562): the operator's start imports the writer and the records
# only, and SQLAlchemy comes with the store, in the writer's thread.
_WHERE = {
    "LeadershipChange": "trigger_operator.ledger.tables",
    "LeadershipEvent": "trigger_operator.ledger.records",
    "LeadershipRecord": "trigger_operator.ledger.records",
    "LedgerMetrics": "trigger_operator.ledger.writer",
    "LedgerSink": "trigger_operator.ledger.writer",
    "LedgerStatus": "trigger_operator.ledger.records",
    "LedgerStore": "trigger_operator.ledger.store",
    "LedgerWriter": "trigger_operator.ledger.writer",
    "MigrationFailed": "trigger_operator.ledger.migrate",
    "PruneResult": "trigger_operator.ledger.store",
    "Run": "trigger_operator.ledger.tables",
    "RunKey": "trigger_operator.ledger.records",
    "RunKind": "trigger_operator.ledger.records",
    "RunQuery": "trigger_operator.ledger.store",
    "RunRecord": "trigger_operator.ledger.records",
    "RunRef": "trigger_operator.ledger.records",
    "attempts_for": "trigger_operator.ledger.records",
    "build_engine": "trigger_operator.ledger.engine",
    "current_revision": "trigger_operator.ledger.migrate",
    "database_url": "trigger_operator.ledger.engine",
    "downgrade": "trigger_operator.ledger.migrate",
    "head_revision": "trigger_operator.ledger.migrate",
    "manual_run_key": "trigger_operator.ledger.records",
    "migrate_database": "trigger_operator.ledger.migrate",
    "moves_forward": "trigger_operator.ledger.records",
    "open_ledger": "trigger_operator.ledger.writer",
    "scheduled_run_key": "trigger_operator.ledger.records",
    "upgrade": "trigger_operator.ledger.migrate",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "LeadershipChange",
    "LeadershipEvent",
    "LeadershipRecord",
    "LedgerMetrics",
    "LedgerSink",
    "LedgerStatus",
    "LedgerStore",
    "LedgerWriter",
    "MigrationFailed",
    "PruneResult",
    "Run",
    "RunKey",
    "RunKind",
    "RunQuery",
    "RunRecord",
    "RunRef",
    "attempts_for",
    "build_engine",
    "current_revision",
    "database_url",
    "downgrade",
    "head_revision",
    "manual_run_key",
    "migrate_database",
    "moves_forward",
    "open_ledger",
    "scheduled_run_key",
    "upgrade",
]
