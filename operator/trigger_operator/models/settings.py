"""The operator's settings: one object, built at start-up from the environment.

Every variable is prefixed `TRIGGER_OPERATOR_` (for example `TRIGGER_OPERATOR_DATABASE_URL`),
except the downward-API variables `POD_NAME` and `POD_NAMESPACE` that a Deployment sets.
Nothing reads the environment at import time: call `Settings()` where the process starts.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the operator process can be told at start-up."""

    model_config = SettingsConfigDict(env_prefix="TRIGGER_OPERATOR_", extra="ignore")

    # Which triggers to watch: empty means every namespace.
    namespaces: list[str] = Field(default_factory=list)
    # Where the operator itself runs: its Lease and its Events live there.
    operator_namespace: str = Field(
        default="trigger-operator",
        validation_alias=AliasChoices("POD_NAMESPACE", "TRIGGER_OPERATOR_OPERATOR_NAMESPACE"),
    )
    pod_name: str | None = Field(
        default=None, validation_alias=AliasChoices("POD_NAME", "TRIGGER_OPERATOR_POD_NAME")
    )
    # Overrides the revision found through the pod's ReplicaSet.
    revision: int | None = None
    identity: str | None = None

    # Passes at once over triggers that are not due (back-fill of status, Job events,
    # edits). Most of a pass is waiting for the API, so this is high; each pass in flight
    # holds its trigger decoded, so it also bounds that memory.
    dispatch_concurrency: int = Field(default=512, ge=1)
    # Passes of triggers whose time has come, in slots of their own: a burst of due runs
    # starts every create at once (the admission sends them before any status patch),
    # instead of each waiting for the status patch of a pass ahead of it to free a slot.
    dispatch_due_concurrency: int = Field(default=2048, ge=1)
    # The API budget of the scheduler's client: calls a second, the most saved for a
    # burst, and connections at once. Sized so that a burst of due runs uses the API
    # server's capacity without starving its other clients (docs/benchmarks.md).
    api_qps: float = Field(default=300.0, ge=0)
    api_burst: int = Field(default=600, ge=1)
    api_connections: int = Field(default=32, ge=1)
    # How often every replica lists all triggers and their Jobs to drop what a watch
    # relist missed; the first listing happens before the replica may lead.
    resync_interval_seconds: float = Field(default=600.0, gt=0)
    upcoming_runs: int = Field(default=3, ge=0, le=20)

    lease_name: str = "trigger-operator-leader"
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    renew_interval_seconds: float = Field(default=5.0, gt=0)
    retry_period_seconds: float = Field(default=2.0, gt=0)

    # The ledger: a SQLAlchemy URL; empty means a SQLite file at `sqlite_path`.
    database_url: str | None = None
    sqlite_path: str = "trigger-operator.db"
    migrate_on_start: bool = True
    ledger_retention_days: int = Field(default=90, ge=1)
    ledger_queue_size: int = Field(default=10_000, ge=1)
    # A failed ledger write is retried after the initial delay, doubling up to the maximum.
    ledger_retry_initial_seconds: float = Field(default=0.5, gt=0)
    ledger_retry_max_seconds: float = Field(default=30.0, gt=0)

    metrics_port: int = Field(default=8080, ge=0, le=65535)
    # `/metrics` answers only a bearer token whose user the API server allows to `get`
    # the non-resource URL /metrics (TokenReview + SubjectAccessReview). False serves it
    # to anyone who reaches the port: for local use only. `/healthz` is always open.
    metrics_auth: bool = True
    # A directory with tls.crt and tls.key (a kubernetes.io/tls Secret mounted): the
    # metrics server speaks HTTPS with that pair, reloaded when it changes. Empty: HTTP.
    metrics_cert_dir: str | None = None

    # Fault injection for the crash-safety tests: exit the process at a named point.
    crash_at: str | None = None
