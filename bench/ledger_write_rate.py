"""Sustained write rate of the run ledger, on a SQLite file and on PostgreSQL.

Feeds the `LedgerWriter` as fast as it drains (each run is reported three times: pending,
running, succeeded, as the scheduler and the Job watch do), prints progress every second,
and ends with records/s and runs/s per backend. PostgreSQL is a throwaway server started
from Debian's binaries with fsync on (as a real one runs), unless `--postgres-url` names one.

    .venv/bin/python bench/ledger_write_rate.py [--seconds 10] [--backend both]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.postgres import PostgresServer

from trigger_operator.clock import SystemClock
from trigger_operator.ledger.engine import build_engine
from trigger_operator.ledger.migrate import upgrade
from trigger_operator.ledger.records import LedgerStatus, RunRecord, RunRef
from trigger_operator.ledger.store import LedgerStore
from trigger_operator.ledger.writer import LedgerWriter

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK_RUNS = 500
HIGH_WATER = 20_000


@contextmanager
def database(backend: str, postgres_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as folder:
            yield f"sqlite+pysqlite:///{folder}/ledger.db"
        return
    if postgres_url:
        yield postgres_url
        return
    server = PostgresServer(durable=True)
    try:
        server.start()
        yield server.create_database("ledger_bench")
    finally:
        server.remove()


def feed(writer: LedgerWriter, first_run: int) -> int:
    """Queue the lives of CHUNK_RUNS runs; returns the next run number."""
    for n in range(first_run, first_run + CHUNK_RUNS):
        ref = RunRef.scheduled(
            namespace=f"team-{n % 7}",
            trigger_name=f"trigger-{n % 101}",
            trigger_uid=f"uid-{n % 101:04d}",
            scheduled_for=EPOCH + timedelta(seconds=n),
            job_name=f"trigger-{n % 101}-{n}",
        )
        started = ref.scheduled_for + timedelta(seconds=1)
        finished = started + timedelta(seconds=3)
        writer.record(
            RunRecord(
                ref=ref, status=LedgerStatus.PENDING, leader_identity="bench-0", leader_revision=1
            )
        )
        writer.record(
            RunRecord(
                ref=ref,
                status=LedgerStatus.RUNNING,
                started_at=started,
                job_uid=f"j-{n}",
                attempts=1,
            )
        )
        writer.record(
            RunRecord(
                ref=ref,
                status=LedgerStatus.SUCCEEDED,
                started_at=started,
                finished_at=finished,
                attempts=1,
            )
        )
    return first_run + CHUNK_RUNS


def measure(backend: str, url: str, seconds: float, batch_size: int) -> tuple[float, float]:
    clock = SystemClock()
    engine = build_engine(url)
    upgrade(engine)
    store = LedgerStore(engine)
    registry = CollectorRegistry()
    writer = LedgerWriter(
        store, clock=clock, registry=registry, queue_size=HIGH_WATER * 2, batch_size=batch_size
    )

    def written() -> float:
        return registry.get_sample_value("trigger_operator_ledger_written_records_total") or 0.0

    next_run = 0
    while writer.depth < HIGH_WATER:
        next_run = feed(writer, next_run)
    writer.start()
    began = clock.monotonic()
    last_report, last_written = began, 0.0
    while (now := clock.monotonic()) - began < seconds:
        if writer.depth < HIGH_WATER:
            next_run = feed(writer, next_run)
        else:
            writer.flush(0.05)  # let the writer catch up a little
        if now - last_report >= 1.0:
            done = written()
            print(
                f"  {backend:8} {now - began:5.1f} s  {done:9.0f} records  "
                f"{(done - last_written) / (now - last_report):8.0f} records/s  "
                f"queue {writer.depth}",
                flush=True,
            )
            last_report, last_written = now, done
    elapsed = clock.monotonic() - began
    done = written()
    dropped = registry.get_sample_value(
        "trigger_operator_ledger_dropped_writes_total", {"reason": "queue_full"}
    )
    writer.stop(60)
    rows = store.count_runs()
    engine.dispose()
    if dropped:
        print(f"  {backend}: {dropped:.0f} records dropped (queue full)", flush=True)
    print(f"  {backend}: {rows} runs in the ledger", flush=True)
    return done / elapsed, done / elapsed / 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per backend")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--postgres-url", help="an existing (empty) database instead")
    options = parser.parse_args()
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    results: dict[str, tuple[float, float]] = {}
    for backend in backends:
        print(f"{backend}: {options.seconds:.0f} s, batches of {options.batch_size}", flush=True)
        with database(backend, options.postgres_url) as url:
            results[backend] = measure(backend, url, options.seconds, options.batch_size)
    print()
    for backend, (records, runs) in results.items():
        print(f"{backend:8} {records:8.0f} records/s  ({runs:7.0f} runs/s, 3 records per run)")


if __name__ == "__main__":
    main()
