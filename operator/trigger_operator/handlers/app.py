"""The operator process: builds every part from the settings, runs them, stops them.

kopf watches triggers and their Jobs and feeds the scheduler's cache; the scheduler
loop dispatches while the gate lets it; the ledger writer drains its queue in a thread;
`/metrics` (to callers the API server authorizes, unless `metrics_auth` is off) and
`/healthz` (to everyone) are served on `metrics_port`. SIGINT/SIGTERM stop kopf, then
the scheduler, then the ledger (flushing what it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from trigger_operator.clock import Clock, SystemClock
from trigger_operator.handlers.serving import ServingCertificate
from trigger_operator.handlers.watch import build_registry, quiet_kopf_logs
from trigger_operator.jobs.builder import Writer
from trigger_operator.kube.access import MetricsAccess, bearer_token
from trigger_operator.kube.gateway import KubeGateway, load_api_client
from trigger_operator.leadership.elector import LeaseElector, LeaseSettings
from trigger_operator.leadership.revision import discover_revision
from trigger_operator.ledger.records import LeadershipEvent
from trigger_operator.ledger.writer import LedgerWriter, open_ledger
from trigger_operator.metrics import Metrics
from trigger_operator.models.settings import Settings
from trigger_operator.scheduler.cache import TriggerCache
from trigger_operator.scheduler.gate import Gate
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


async def _serve_health(
    port: int,
    registry: CollectorRegistry,
    gate: Gate,
    access: MetricsAccess | None,
    tls: ServingCertificate | None,
) -> web.AppRunner | None:
    """`/healthz` for everyone (the kubelet's probes); `/metrics` for whom `access` allows.

    HTTPS with `tls`, else plain HTTP.
    """
    if port == 0:
        return None

    async def healthz(_: web.Request) -> web.Response:
        if tls is not None:
            tls.refresh()
        return web.json_response({"ok": True, "leading": gate.may_write()})

    async def metrics(request: web.Request) -> web.Response:
        if tls is not None:
            tls.refresh()
        if access is not None:
            decision = await access.decide(bearer_token(request.headers.get("Authorization")))
            if not decision.allowed:
                headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else {}
                return web.Response(status=decision.status, text=decision.reason, headers=headers)
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = tls.context if tls is not None else None
    await web.TCPSite(runner, "0.0.0.0", port, ssl_context=context).start()
    return runner


def _leadership_reporter(
    gateway: KubeGateway,
    lease: LeaseSettings,
    writer: Writer,
    metrics: Metrics,
    ledger: LedgerWriter | None,
    clock: Clock,
) -> Callable[[str, str | None], None]:
    """Each acquisition, supersession, loss and release: a metric, an Event, a ledger row."""
    pending: set[asyncio.Task[None]] = set()

    def report(event: str, other: str | None) -> None:
        metrics.leader.set(1 if event == "acquired" else 0)
        metrics.lease_transitions.labels(event=event).inc()
        if ledger is not None:
            ledger.record_leadership(
                LeadershipEvent(event),
                identity=writer.identity,
                revision=writer.revision,
                other_identity=other,
            )
        message = f"{writer.identity} (revision {writer.revision}) {event} the scheduling lease"
        if other:
            message += f" ({'from' if event == 'acquired' else 'to'} {other})"
        task = asyncio.get_running_loop().create_task(
            gateway.emit_event(
                namespace=lease.namespace,
                name=lease.name,
                uid="",
                kind="Lease",
                api_version="coordination.k8s.io/v1",
                event_type="Normal" if event in ("acquired", "released") else "Warning",
                reason=f"Leader{event.capitalize()}",
                message=message,
                now=clock.now(),
            )
        )
        pending.add(task)
        task.add_done_callback(pending.discard)

    return report


def _on_event_loop(callback: Callable[[], None]) -> Callable[[], None]:
    """`callback`, callable from another thread: it runs on the current event loop."""
    loop = asyncio.get_running_loop()

    def call() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to do
            loop.call_soon_threadsafe(callback)

    return call


class OperatorLoop(asyncio.SelectorEventLoop):
    """An event loop on which our stop-signal handler survives kopf installing its own.

    kopf replaces SIGINT/SIGTERM handlers when it starts; here its handler is chained
    with ours, so the scheduler stops dispatching the moment a signal arrives.
    """

    on_stop_signal: Callable[[signal.Signals], None] | None = None

    def add_signal_handler(  # type: ignore[override]
        self, sig: int, callback: Callable[..., object], *args: Any
    ) -> None:
        hook = self.on_stop_signal
        if hook is None or sig not in (signal.SIGINT, signal.SIGTERM) or callback == hook:
            super().add_signal_handler(sig, callback, *args)
            return

        def both(*given: Any) -> None:
            hook(signal.Signals(sig))
            callback(*given)

        super().add_signal_handler(sig, both, *args)


def serve(settings: Settings) -> None:
    """Run the operator on an `OperatorLoop` until it stops."""
    loop = OperatorLoop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(run_operator(settings))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def run_operator(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry = REGISTRY,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set or a signal arrives."""
    clock = clock or SystemClock()
    quiet_kopf_logs()
    identity = default_identity(settings)
    gateway = KubeGateway(load_api_client(), workers=settings.dispatch_concurrency + 4)
    metrics = Metrics.create(registry)
    revision, source = await discover_revision(gateway, settings)
    writer = Writer(identity=identity, revision=revision)
    ledger: LedgerWriter | None = open_ledger(settings, clock=clock, registry=registry)
    lease = LeaseSettings(
        namespace=settings.operator_namespace,
        name=settings.lease_name,
        duration=settings.lease_duration_seconds,
        renew_interval=settings.renew_interval_seconds,
        retry_period=settings.retry_period_seconds,
    )
    elector = LeaseElector(
        gateway,
        lease=lease,
        writer=writer,
        clock=clock,
        on_change=_leadership_reporter(gateway, lease, writer, metrics, ledger, clock),
    )
    gate: Gate = elector
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
    if ledger is not None:
        ledger.add_recovery_listener(_on_event_loop(scheduler.reconcile_ledger))
    log.info(
        "operator starting",
        extra={
            "identity": identity,
            "revision": revision,
            "revision_from": source,
            "namespaces": ",".join(settings.namespaces) or "*",
            "lease": f"{lease.namespace}/{lease.name}",
        },
    )
    access = MetricsAccess(gateway, clock=clock) if settings.metrics_auth else None
    tls = ServingCertificate(Path(settings.metrics_cert_dir)) if settings.metrics_cert_dir else None
    health = await _serve_health(settings.metrics_port, registry, gate, access, tls)
    stop_flag = stop or asyncio.Event()
    scheduler_task = asyncio.create_task(scheduler.run(), name="scheduler")
    elector_task = asyncio.create_task(elector.run(), name="elector")

    releasing: asyncio.Task[None] | None = None

    def release_lease() -> asyncio.Task[None]:
        # One release per process, however many times a stop signal arrives.
        nonlocal releasing
        if releasing is None:
            releasing = asyncio.get_running_loop().create_task(elector.release())
        return releasing

    def on_signal(signum: signal.Signals) -> None:
        # Stop dispatching and hand the Lease on at once; kopf's graceful stop of its
        # watches takes longer, and the successor should not wait for it.
        log.info("signal received: stopping", extra={"signal": signum.name})
        scheduler.pause()
        release_lease()
        stop_flag.set()

    loop = asyncio.get_running_loop()
    if isinstance(loop, OperatorLoop):
        loop.on_stop_signal = on_signal
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)

    # A namespaced operator also watches its own namespace, where its Lease lives.
    namespaces = list(settings.namespaces)
    if namespaces and lease.namespace not in namespaces:
        namespaces.append(lease.namespace)
    try:
        await kopf.operator(
            registry=build_registry(
                scheduler,
                lease=(lease.namespace, lease.name),
                lease_observer=elector,
            ),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            stop_flag=stop_flag,
        )
    finally:
        log.info("operator stopping")
        scheduler.pause()
        await scheduler.stop()
        await release_lease()
        for task in (scheduler_task, elector_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ledger is not None:
            await ledger.aclose()
        if health is not None:
            await health.cleanup()
        gateway.close()
