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
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import kopf
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from trigger_operator.clock import Clock, SystemClock
from trigger_operator.handlers.serving import ServingCertificate
from trigger_operator.handlers.watch import build_registry, tune_kopf
from trigger_operator.jobs.builder import LeaderIdentity
from trigger_operator.kube.access import MetricsAccess, bearer_token
from trigger_operator.kube.connection import Credentials, load_credentials
from trigger_operator.kube.gateway import KubeError, KubeGateway
from trigger_operator.leadership.elector import (
    LeadershipListener,
    LeaseElector,
    LeaseSettings,
    LeaseUnusable,
)
from trigger_operator.leadership.revision import discover_revision
from trigger_operator.ledger.writer import LedgerWriter, open_ledger
from trigger_operator.memory import limit_arenas
from trigger_operator.metrics import Metrics
from trigger_operator.models.api import CALENDAR_PLURAL, GROUP, PLURAL, VERSION
from trigger_operator.models.leadership import LeadershipEvent
from trigger_operator.models.settings import Settings
from trigger_operator.scheduler.cache import TriggerCache
from trigger_operator.scheduler.gate import Gate, fence_for
from trigger_operator.scheduler.loop import Scheduler
from trigger_operator.scheduler.reconcile import Reconciler
from trigger_operator.scheduler.recorder import RunRecorder

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class EventRecorder(Protocol):
    """Where the leadership reporter writes its core/v1 Events (the gateway in production)."""

    async def emit_event(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        kind: str,
        api_version: str,
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> None: ...


def leadership_reporter(
    gateway: EventRecorder,
    lease: LeaseSettings,
    writer: LeaderIdentity,
    metrics: Metrics,
    ledger: LedgerWriter,
    clock: Clock,
) -> LeadershipListener:
    """Each acquisition, supersession, loss and release: a metric, an Event, a ledger row."""
    pending: set[asyncio.Task[None]] = set()

    def report(event: LeadershipEvent, other: str | None) -> None:
        acquired = event is LeadershipEvent.ACQUIRED
        metrics.leader.set(1 if acquired else 0)
        metrics.lease_transitions.labels(event=event.value).inc()
        ledger.record_leadership(
            event,
            identity=writer.identity,
            revision=writer.revision,
            other_identity=other,
        )
        message = f"{writer.identity} (revision {writer.revision}) {event} the scheduling lease"
        if other:
            message += f" ({'from' if acquired else 'to'} {other})"
        calm = event in (LeadershipEvent.ACQUIRED, LeadershipEvent.RELEASED)
        task = asyncio.get_running_loop().create_task(
            gateway.emit_event(
                namespace=lease.namespace,
                name=lease.name,
                uid="",
                kind="Lease",
                api_version="coordination.k8s.io/v1",
                event_type="Normal" if calm else "Warning",
                reason=f"Leader{event.value.capitalize()}",
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


class LeaseLoop:
    """The elector's own event loop, on a thread of its own.

    A renew is a few milliseconds of work that must happen on time; on the scheduler's
    loop it waited behind whatever else was ready (thousands of watch events and passes
    when a new leader starts with ten thousand triggers) and a busy leader fenced itself.
    On a thread of its own it gets the interpreter every few milliseconds, however busy
    the other loop is.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lease", daemon=True)
        self._thread.start()

    async def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the lease loop; await it from another loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def _lead_after_sync(
    scheduler: Scheduler,
    elector: LeaseElector,
    clock: Clock,
    interval: float,
    home: asyncio.AbstractEventLoop,
) -> None:
    """List the world until it succeeds, then run the elector (on `home`) and resync now
    and again.

    Returns when the elector stops; raises what stopped it (`LeaseUnusable`).
    """
    await _resync(scheduler, clock)
    election = asyncio.create_task(elector.run_on(home), name="election")
    ended = asyncio.Event()
    election.add_done_callback(lambda _: ended.set())
    try:
        while True:
            await clock.wait_any(ended, within=interval)
            if ended.is_set():
                election.result()
                return
            await _resync(scheduler, clock)
    finally:
        election.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await election


async def _resync(scheduler: Scheduler, clock: Clock) -> None:
    delay, failures = 1.0, 0
    while True:
        try:
            await scheduler.resync()
            if failures:
                log.info("listing the cluster succeeded", extra={"failed_attempts": failures})
            return
        except KubeError as error:
            failures += 1
            if failures == 1:
                log.warning("cannot list the cluster yet; retrying", extra={"error": str(error)})
            await clock.sleep(delay)
            delay = min(30.0, delay * 2)


# What kopf watches: it resolves them once, when it starts, from the API's discovery, and
# re-resolves only on events of the CRD watch. A kopf started while the API server is
# still coming up (a restart, an upgrade) finds them missing and never watches them:
# no trigger created later, no run-now, no Job completion would ever reach the cache.
WATCHED_RESOURCES = (
    (GROUP, VERSION, PLURAL),
    (GROUP, VERSION, CALENDAR_PLURAL),
    ("batch", "v1", "jobs"),
    ("coordination.k8s.io", "v1", "leases"),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
)


class Discovery(Protocol):
    async def served_resources(self, group: str, version: str) -> set[str]: ...


async def _ready_to_watch(
    scheduler: Scheduler, discovery: Discovery, clock: Clock, *, stop: asyncio.Event
) -> None:
    """Return once kopf may start watching: the watched resources are served, and the
    scheduler's first listing has filled the cache (or `stop` is set).

    kopf lists every object when it starts; after the scheduler's listing those events
    find their versions held and are dropped before kopf's per-object work. Started side
    by side, the two listings raced and kopf handled about half of ten thousand triggers
    in full. Nothing waits on kopf meanwhile: the elector too starts after that listing.
    """
    await wait_until_served(discovery, clock, stop=stop)
    while not (scheduler.listed.is_set() or stop.is_set()):
        await clock.wait_any(scheduler.listed, stop, within=1.0)


async def wait_until_served(
    discovery: Discovery,
    clock: Clock,
    resources: tuple[tuple[str, str, str], ...] = WATCHED_RESOURCES,
    stop: asyncio.Event | None = None,
) -> None:
    """Return once the API server's discovery lists every resource kopf must watch.

    Retries with back-off (0.5 s doubling to 10 s), logging the wait once; returns early
    when `stop` is set.
    """
    stop = stop or asyncio.Event()
    delay, failures = 0.5, 0
    while True:
        missing: list[str] = []
        try:
            for group, version, plural in resources:
                if plural not in await discovery.served_resources(group, version):
                    missing.append(f"{plural}.{version}.{group}")
        except KubeError as error:
            missing = [f"discovery failed: {error}"]
        if not missing:
            if failures:
                log.info(
                    "the API server serves every watched resource",
                    extra={"failed_attempts": failures},
                )
            return
        failures += 1
        if failures == 1:
            log.warning(
                "waiting for the API server to serve the watched resources; retrying",
                extra={"missing": ", ".join(missing)},
            )
        await clock.wait_any(stop, within=delay)
        if stop.is_set():
            return
        delay = min(10.0, delay * 2)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class OperatorLoop(asyncio.SelectorEventLoop):
    """An event loop that holds SIGINT and SIGTERM until the process exits.

    kopf installs handlers for both when it starts and removes them when it stops, and
    removing an asyncio handler restores the default action: a signal repeated late in
    the stop (while the ledger is flushed and the Lease released) would kill the process
    half-way. From `hold_stop_signals` on, one handler of the process's own holds the two
    signals: ours runs first for every signal (it is idempotent), kopf's is chained after
    it while installed (it sets the result of one future and may find it set: nothing is
    lost), removing kopf's only unchains it, and once the loop is closed the signals are
    ignored until the process exits.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stop_handler: Callable[[signal.Signals], None] | None = None
        self._chained: dict[int, tuple[Callable[..., object], tuple[Any, ...]]] = {}

    def hold_stop_signals(self, handler: Callable[[signal.Signals], None]) -> None:
        self._stop_handler = handler
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._arrived)

    def _arrived(self, signum: int, _frame: object) -> None:
        # Runs on the main thread between two bytecodes, like asyncio.run's own SIGINT
        # handler; the work is handed to the loop.
        if not self.is_closed():
            self.call_soon_threadsafe(self._deliver, signal.Signals(signum))

    def _deliver(self, signum: signal.Signals) -> None:
        if self._stop_handler is not None:
            self._stop_handler(signum)
        chained = self._chained.get(signum)
        if chained is not None:
            (callback, args) = chained
            with contextlib.suppress(asyncio.InvalidStateError):
                callback(*args)

    def add_signal_handler(  # type: ignore[override]
        self, sig: int, callback: Callable[..., object], *args: Any
    ) -> None:
        if self._stop_handler is None or sig not in _STOP_SIGNALS:
            super().add_signal_handler(sig, callback, *args)
        elif callback != self._stop_handler:
            self._chained[sig] = (callback, args)

    def remove_signal_handler(self, sig: int) -> bool:
        if self._stop_handler is None or sig not in _STOP_SIGNALS:
            return super().remove_signal_handler(sig)
        return self._chained.pop(sig, None) is not None

    def close(self) -> None:
        super().close()
        if self._stop_handler is not None:
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)


def serve(settings: Settings, credentials: Credentials | None = None) -> None:
    """Run the operator on an `OperatorLoop` until it stops."""
    limit_arenas()  # before any thread of ours starts
    loop = OperatorLoop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(run_operator(settings, credentials=credentials))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@dataclass(frozen=True)
class _Parts:
    """What a running operator is made of, built from the settings."""

    gateway: KubeGateway
    lease_gateway: KubeGateway
    lease_loop: LeaseLoop
    ledger: LedgerWriter
    lease: LeaseSettings
    elector: LeaseElector
    scheduler: Scheduler


async def _build(
    settings: Settings, *, credentials: Credentials, clock: Clock, registry: CollectorRegistry
) -> _Parts:
    """Every part, wired together; nothing runs yet except the ledger's writer thread."""
    identity = default_identity(settings)
    gateway = KubeGateway(
        credentials,
        connections=settings.api_connections,
        qps=settings.api_qps,
        burst=settings.api_burst,
    )
    # The Lease has connections of its own: a dispatch burst never delays a renew.
    lease_gateway = KubeGateway(credentials, connections=2)
    metrics = Metrics.create(registry)
    revision, source = await discover_revision(gateway, settings)
    writer = LeaderIdentity(identity=identity, revision=revision)
    ledger = open_ledger(settings, clock=clock, registry=registry)
    lease = LeaseSettings(
        namespace=settings.operator_namespace,
        name=settings.lease_name,
        duration=settings.lease_duration_seconds,
        renew_interval=settings.renew_interval_seconds,
        retry_period=settings.retry_period_seconds,
    )
    elector = LeaseElector(
        lease_gateway,
        lease=lease,
        writer=writer,
        clock=clock,
        on_change=leadership_reporter(gateway, lease, writer, metrics, ledger, clock),
    )
    gate: Gate = elector
    gateway.fence = fence_for(elector)
    recorder = RunRecorder(ledger=ledger, metrics=metrics, gate=gate, clock=clock)
    reconciler = Reconciler(
        gateway=gateway,
        gate=gate,
        clock=clock,
        recorder=recorder,
        upcoming_count=settings.upcoming_runs,
        crash_at=settings.crash_at,
    )
    scheduler = Scheduler(
        reconciler=reconciler,
        recorder=recorder,
        cache=TriggerCache(),
        gate=gate,
        clock=clock,
        concurrency=settings.dispatch_concurrency,
        due_concurrency=settings.dispatch_due_concurrency,
        lister=gateway,
        namespaces=settings.namespaces,
    )
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
    return _Parts(
        gateway=gateway,
        lease_gateway=lease_gateway,
        lease_loop=LeaseLoop(),
        ledger=ledger,
        lease=lease,
        elector=elector,
        scheduler=scheduler,
    )


def _watched_namespaces(settings: Settings, lease: LeaseSettings) -> list[str]:
    """The namespaces to watch; empty for the whole cluster.

    A namespaced operator also watches its own namespace, where its Lease lives.
    """
    namespaces = list(settings.namespaces)
    if namespaces and lease.namespace not in namespaces:
        namespaces.append(lease.namespace)
    return namespaces


async def _start_health(
    settings: Settings, registry: CollectorRegistry, parts: _Parts, clock: Clock
) -> web.AppRunner | None:
    """`/healthz` and `/metrics` (behind TokenReview and SubjectAccessReview by default)."""
    access = MetricsAccess(parts.gateway, clock=clock) if settings.metrics_auth else None
    tls = ServingCertificate(Path(settings.metrics_cert_dir)) if settings.metrics_cert_dir else None
    return await _serve_health(settings.metrics_port, registry, parts.elector, access, tls)


async def run_operator(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry = REGISTRY,
    stop: asyncio.Event | None = None,
    credentials: Credentials | None = None,
) -> None:
    """Run until `stop` is set or a signal arrives."""
    clock = clock or SystemClock()
    parts = await _build(
        settings, credentials=credentials or load_credentials(), clock=clock, registry=registry
    )
    tune_kopf(parts.scheduler.cache)
    health = await _start_health(settings, registry, parts, clock)
    stop_flag = stop or asyncio.Event()
    tasks = (
        asyncio.create_task(parts.scheduler.run(), name="scheduler"),
        # A replica competes for the Lease only once its cache holds every trigger and
        # Job: a leader that dispatched from a half-filled cache would miss runs and rows.
        asyncio.create_task(
            _lead_after_sync(
                parts.scheduler,
                parts.elector,
                clock,
                settings.resync_interval_seconds,
                parts.lease_loop.loop,
            ),
            name="elector",
        ),
    )

    releasing: asyncio.Task[None] | None = None

    def release_lease() -> asyncio.Task[None]:
        # One release per process, however many times a stop signal arrives.
        nonlocal releasing
        if releasing is None:
            releasing = asyncio.get_running_loop().create_task(parts.elector.release())
        return releasing

    def on_signal(signum: signal.Signals) -> None:
        # Stop dispatching and hand the Lease on at once; kopf's graceful stop of its
        # watches takes longer, and the successor should not wait for it.
        log.info("signal received: stopping", extra={"signal": signum.name})
        parts.scheduler.pause()
        release_lease()
        stop_flag.set()

    _on_stop_signal(on_signal)
    fatal: list[BaseException] = []

    def on_election_end(task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if isinstance(error, LeaseUnusable):
            log.critical(
                "cannot take part in leader election: stopping", extra={"error": str(error)}
            )
            fatal.append(error)
            parts.scheduler.pause()
            stop_flag.set()

    tasks[1].add_done_callback(on_election_end)
    namespaces = _watched_namespaces(settings, parts.lease)
    try:
        await _ready_to_watch(parts.scheduler, parts.gateway, clock, stop=stop_flag)
        await kopf.operator(
            registry=build_registry(
                parts.scheduler,
                lease=(parts.lease.namespace, parts.lease.name),
                lease_observer=parts.elector,
                login=parts.gateway.credentials.login_fields,
            ),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            stop_flag=stop_flag,
        )
    finally:
        log.info("operator stopping")
        parts.scheduler.pause()
        await parts.scheduler.stop()
        await release_lease()
        await _shut_down(parts, tasks, health)
    if fatal:
        raise fatal[0]


def _on_stop_signal(handler: Callable[[signal.Signals], None]) -> None:
    """Call `handler` on SIGINT and SIGTERM, before, while and after kopf has its own."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, OperatorLoop):
        loop.hold_stop_signals(handler)
        return
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, handler, signum)


async def _shut_down(
    parts: _Parts, tasks: tuple[asyncio.Task[None], ...], health: web.AppRunner | None
) -> None:
    """Stop the tasks, then the ledger (flushing what it can), the health server, the pool."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await parts.ledger.aclose()
    if health is not None:
        await health.cleanup()
    await parts.gateway.aclose()
    await parts.lease_loop.call(parts.lease_gateway.aclose())
    parts.lease_loop.stop()
