"""The run ledger: a SQL record of every run and leadership change that outlives Jobs.

The operator opens it at start-up with `open_ledger(settings, clock=...)`, reports runs
through the returned `LedgerWriter` (non-blocking; written from its own thread), and stops
it with `await writer.aclose()`. `trigger-operator history` reads it through `LedgerStore`;
`trigger-operator migrate` runs `upgrade`.
"""

from trigger_operator.ledger.engine import build_engine, database_url
from trigger_operator.ledger.migrate import (
    MigrationFailed,
    current_revision,
    downgrade,
    head_revision,
    migrate_database,
    upgrade,
)
from trigger_operator.ledger.records import (
    LeadershipEvent,
    LeadershipRecord,
    LedgerStatus,
    RunKey,
    RunKind,
    RunRecord,
    RunRef,
    attempts_for,
    manual_run_key,
    moves_forward,
    scheduled_run_key,
)
from trigger_operator.ledger.store import LedgerStore, PruneResult, RunQuery
from trigger_operator.ledger.tables import LeadershipChange, Run
from trigger_operator.ledger.writer import LedgerMetrics, LedgerSink, LedgerWriter, open_ledger

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
