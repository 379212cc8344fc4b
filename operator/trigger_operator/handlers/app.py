"""The operator process: builds every part from the settings, runs them, stops them.

kopf watches triggers and their Jobs and feeds the scheduler's cache; the scheduler
loop dispatches while the gate lets it; the ledger writer drains its queue in a thread;
`/metrics` and `/healthz` are served on `metrics_port`. SIGINT/SIGTERM stop kopf, then
the scheduler, then the ledger (flushing what it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from trigger_operator.clock import Clock, SystemClock
from trigger_operator.handlers.watch import build_registry, quiet_kopf_logs
from trigger_operator.jobs.builder import Writer
from trigger_operator.kube.gateway import KubeGateway, load_api_client
from trigger_operator.ledger.writer import LedgerWriter, open_ledger
from trigger_operator.metrics import Metrics
from trigger_operator.models.settings import Settings
from trigger_operator.scheduler.cache import TriggerCache
from trigger_operator.scheduler.gate import AlwaysLeader, Gate
from trigger_operator.scheduler.loop import Scheduler
from trigger_operator.scheduler.reconcile import Reconciler

log = logging.getLogger(__name__)


def default_identity(settings: Settings) -> str:
    """The pod name in a Deployment; host and pid elsewhere."""
    if settings.identity:
        return settings.identity
    if settings.pod_name:
        return settings.pod_name
    return f"{socket.gethostname()}-{os.getpid()}"


async def _serve_health(port: int, registry: CollectorRegistry, gate: Gate) -> web.AppRunner | None:
    if port == 0:
        return None

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "leading": gate.may_write()})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def run_operator(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry = REGISTRY,
    stop: asyncio.Event | None = None,
    gate_factory: Any = None,
) -> None:
    """Run until `stop` is set or a signal arrives."""
    clock = clock or SystemClock()
    quiet_kopf_logs()
    identity = default_identity(settings)
    gateway = KubeGateway(load_api_client(), workers=settings.dispatch_concurrency + 4)
    metrics = Metrics.create(registry)
    revision = settings.revision or 0
    writer = Writer(identity=identity, revision=revision)
    gate: Gate = gate_factory(gateway, writer, metrics) if gate_factory else AlwaysLeader(writer)
    ledger: LedgerWriter | None = open_ledger(settings, clock=clock, registry=registry)
    reconciler = Reconciler(
        gateway=gateway,
        gate=gate,
        clock=clock,
        metrics=metrics,
        ledger=ledger,
        upcoming_count=settings.upcoming_runs,
        crash_at=settings.crash_at,
    )
    cache = TriggerCache()
    scheduler = Scheduler(
        reconciler=reconciler,
        cache=cache,
        gate=gate,
        clock=clock,
        concurrency=settings.dispatch_concurrency,
    )
    log.info(
        "operator starting",
        extra={
            "identity": identity,
            "revision": revision,
            "namespaces": ",".join(settings.namespaces) or "*",
        },
    )
    health = await _serve_health(settings.metrics_port, registry, gate)
    stop_flag = stop or asyncio.Event()
    scheduler_task = asyncio.create_task(scheduler.run(), name="scheduler")

    def on_signal(signum: signal.Signals) -> None:
        # Stop dispatching at once; kopf's graceful stop of its watches takes longer.
        log.info("signal received: stopping", extra={"signal": signum.name})
        scheduler.pause()
        stop_flag.set()

    def install_handlers() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)

    def take_signals() -> None:
        # kopf installs its own handlers just after its start-up handlers begin; ours
        # must come later to replace them, and they stop kopf too (through stop_flag).
        asyncio.get_running_loop().call_later(0.5, install_handlers)

    try:
        await kopf.operator(
            registry=build_registry(scheduler, on_started=take_signals),
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=True,
            stop_flag=stop_flag,
        )
    finally:
        log.info("operator stopping")
        await scheduler.stop()
        scheduler_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler_task
        if ledger is not None:
            await ledger.aclose()
        if health is not None:
            await health.cleanup()
        gateway.close()
