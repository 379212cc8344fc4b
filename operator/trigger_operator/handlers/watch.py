"""kopf event handlers: every watch event of a trigger, a trigger's Job or a ScheduleCalendar
feeds the cache.

Only event handlers are used: they store no progress and no last-handled configuration
on the trigger, so a GitOps tool never sees an annotation or finalizer it did not write.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import types
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Protocol

import kopf
import kopf._cogs.clients.api as kopf_api
import kopf._cogs.clients.watching as kopf_watching
import orjson

from trigger_operator.jobs.builder import LABEL_TRIGGER_UID
from trigger_operator.models.api import CALENDAR_PLURAL, GROUP, PLURAL, VERSION


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base of nothing: the operator has no create/update handlers to diff for.

    kopf builds an object's "essence" (a deep copy of the body, stripped) on every event
    for such handlers. With only event handlers it is never read, and at ten thousand
    triggers the copies were a fifth of the operator's CPU.
    """

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


class Feed(Protocol):
    """What the handlers hand events to."""

    def on_trigger_event(self, event_type: str | None, body: dict[str, Any]) -> None: ...

    def on_job_event(self, event_type: str | None, body: dict[str, Any]) -> None: ...

    def on_calendar_event(self, event_type: str | None, body: dict[str, Any]) -> None: ...


class LeaseObserver(Protocol):
    """What watch events of the scheduling Lease are handed to."""

    def observe(self, lease: dict[str, Any]) -> None: ...


def build_registry(
    feed: Feed,
    *,
    lease: tuple[str, str],
    lease_observer: LeaseObserver,
    login: Callable[[], dict[str, Any] | None] | None = None,
) -> kopf.OperatorRegistry:
    """A kopf registry whose handlers forward watch events to `feed`.

    Events of the scheduling Lease (`lease` is its namespace and name) go to `lease_observer`.
    kopf connects with the fields `login` gives (`kube.connection`; asked again when the
    API server answers 401), or, when it gives None, through the official client.
    """
    registry = kopf.OperatorRegistry()
    lease_namespace, lease_name = lease

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # The scheduler writes its own Events; kopf's would duplicate every log line.
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = 30
        settings.execution.max_workers = 4
        settings.persistence.diffbase_storage = NoDiffBase()
        # kopf keeps a worker per object while its events keep coming; ours only hand
        # the event on, so a worker need not wait 5 s for more: at ten thousand objects
        # listed at once, fewer live workers is less memory.
        settings.queueing.idle_timeout = 1.0
        # The initial listing by pages, as the scheduler's own resync lists: ten thousand
        # triggers decoded at once were the process's high-water mark of memory.
        settings.watching.chunk_size = LIST_CHUNK
        # Only the Jobs of triggers and only our own Lease cross the wire: the API server
        # filters, instead of every node heartbeat Lease and every Job reaching us.
        settings.watching.label_selectors["batch", "jobs"] = LABEL_TRIGGER_UID
        settings.watching.field_selectors["coordination.k8s.io", "leases"] = (
            f"metadata.name={lease_name}"
        )

    @kopf.on.login(registry=registry)
    def log_in(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the scheduler's client: in-cluster, else KUBECONFIG.
        fields = login() if login is not None else None
        if fields is None:
            return kopf.login_via_client(**kwargs)
        return kopf.ConnectionInfo(**fields)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def trigger_event(event: kopf.RawEvent, **_: Any) -> None:
        feed.on_trigger_event(event.get("type"), dict(event["object"]))

    @kopf.on.event(GROUP, VERSION, CALENDAR_PLURAL, registry=registry)
    async def calendar_event(event: kopf.RawEvent, **_: Any) -> None:
        feed.on_calendar_event(event.get("type"), dict(event["object"]))

    @kopf.on.event(
        "batch", "v1", "jobs", labels={LABEL_TRIGGER_UID: kopf.PRESENT}, registry=registry
    )
    async def job_event(event: kopf.RawEvent, **_: Any) -> None:
        feed.on_job_event(event.get("type"), dict(event["object"]))

    def is_ours(name: str, namespace: str | None, **_: Any) -> bool:
        return name == lease_name and namespace == lease_namespace

    @kopf.on.event("coordination.k8s.io", "v1", "leases", when=is_ours, registry=registry)
    async def lease_event(event: kopf.RawEvent, **_: Any) -> None:
        if event.get("type") != "DELETED":
            lease_observer.observe(dict(event["object"]))

    return registry


#: Objects per page of kopf's initial listing.
LIST_CHUNK = 500


def decode_watch_streams_with_orjson() -> bool:
    """kopf decodes each watch event with the standard library's `json`; orjson does it
    several times faster (a watch line was 5 % of the operator's CPU in a burst).

    Swaps the `json` kopf's API module uses for one whose `loads` is orjson's (which takes
    the `str` kopf hands it). Returns whether kopf still has that module attribute; when a
    kopf release drops it, nothing is swapped and kopf decodes as before.
    """
    current = getattr(kopf_api, "json", None)
    if current is None or not hasattr(current, "loads"):
        return False
    if getattr(current, "loads", None) is orjson.loads:
        return True
    fast = types.SimpleNamespace(**{k: getattr(current, k) for k in dir(current) if k[0] != "_"})
    fast.loads = orjson.loads
    kopf_api.json = fast  # type: ignore[assignment,attr-defined]
    return True


def decode_listings_with_orjson() -> bool:
    """kopf decodes its listings (the first page of every watch, and each relist) with
    aiohttp's default, the standard library's `json`: at ten thousand triggers that was
    5 % of a cold start's CPU. Its `get` is replaced by the same request whose answer
    orjson decodes.

    Returns whether kopf's `get` still has the shape this relies on (a `request` beside
    it, the same parameters); when a kopf release changes either, nothing is replaced.
    """
    current = getattr(kopf_api, "get", None)
    request = getattr(kopf_api, "request", None)
    if current is None or request is None:
        return False
    if getattr(current, "__wrapped__", None) is not None:
        return True
    if tuple(inspect.signature(current).parameters) != _KOPF_GET_PARAMETERS:
        return False

    async def get(
        url: str,
        *,
        settings: Any,
        payload: object | None = None,
        headers: dict[str, str] | None = None,
        timeout: Any = None,  # noqa: ASYNC109 - kopf's own parameter, handed on
        logger: Any,
    ) -> Any:
        response = await request(
            method="get",
            url=url,
            payload=payload,
            headers=headers,
            timeout=timeout,
            settings=settings,
            logger=logger,
        )
        async with response:
            return await response.json(loads=_loads)

    get.__wrapped__ = current  # type: ignore[attr-defined]
    kopf_api.get = get
    return True


_KOPF_GET_PARAMETERS = ("url", "settings", "payload", "headers", "timeout", "logger")


def _loads(text: str) -> Any:
    return orjson.loads(text)


class Holder(Protocol):
    """What can tell whether a watch event would bring it anything new."""

    def holds(self, plural: str, body: Mapping[str, Any]) -> bool:
        """Whether this very version of the object (`plural`: "scheduledtriggers" or
        "jobs") is held already."""
        ...


#: The resources whose watch events are looked at before kopf's per-object work.
_HELD_RESOURCES = {(GROUP, PLURAL), ("batch", "jobs")}
#: The event types that bring an object's state: kopf gives the objects of its listings
#: (the first one, and each relist after a 410) the type None, the watch ADDED/MODIFIED.
_UPSERTS = (None, "ADDED", "MODIFIED")


def skip_events_already_held(holder: Holder) -> bool:
    """Drop, before kopf's per-object machinery, the watch events of a trigger or Job
    whose very version `holder` holds: the echo of the operator's own status patch or Job
    create, kopf's initial listing of what the scheduler listed itself, a relist of an
    unchanged object. A resourceVersion names one state of an object, so such an event
    carries nothing new; at ten thousand triggers kopf's work on those events (a worker
    task, its causes and handler invocation each) was a fifth of a cold start's CPU.
    DELETED events always go through.

    Wraps the watch stream kopf's watcher iterates (`infinite_watch`); returns whether
    kopf still has it. When a kopf release drops it, nothing is wrapped and every event
    goes through, as before.
    """
    current = getattr(kopf_watching, "infinite_watch", None)
    if current is None:
        return False
    original: Callable[..., AsyncGenerator[Any, None]] = getattr(current, "__wrapped__", current)

    async def infinite_watch(*, resource: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        plural = getattr(resource, "plural", None)
        looked_at = (getattr(resource, "group", None), plural) in _HELD_RESOURCES
        async with contextlib.aclosing(original(resource=resource, **kwargs)) as stream:
            async for raw_event in stream:
                if (
                    looked_at
                    and isinstance(raw_event, dict)
                    and raw_event.get("type") in _UPSERTS
                    and holder.holds(str(plural), raw_event.get("object") or {})
                ):
                    continue
                yield raw_event

    infinite_watch.__wrapped__ = original  # type: ignore[attr-defined]
    kopf_watching.infinite_watch = infinite_watch
    return True


def tune_kopf(holder: Holder | None = None) -> None:
    """kopf's watch streams and listings decoded by orjson, the events `holder` holds
    already dropped before kopf's per-object work, and its logs quieter: kopf logs every
    handler call at INFO; our own lines carry the context that matters."""
    decode_watch_streams_with_orjson()
    decode_listings_with_orjson()
    if holder is not None:
        skip_events_already_held(holder)
    for name in ("kopf.objects", "kopf.activities.startup"):
        logging.getLogger(name).setLevel(logging.WARNING)
