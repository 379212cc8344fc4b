"""The warm cache every replica keeps: triggers and the Jobs they own, fed by watch events.

A leader that takes over already knows every trigger and every Job, so it dispatches
within a second of acquiring the lease instead of listing the world first.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from trigger_operator.jobs.builder import LABEL_TRIGGER_UID, TriggerRef
from trigger_operator.jobs.state import ObservedJob, observe_job


class TriggerEntry:
    """One trigger as last seen, with the runs it owns and the scheduler's notes on it.

    The body is kept as its JSON, compressed, and decoded while a pass or a reconciliation
    uses it (`body`; `release_body` lets the decoded copy go): a decoded body takes five
    times the memory of its JSON, and at ten thousand triggers those copies were most of
    the operator's memory. What the loop reads of every trigger without a pass (names,
    resourceVersion, generation, the next run) is kept decoded beside it.
    """

    __slots__ = (
        "_decoded",
        "_raw",
        "backoff",
        "deleting",
        "due_at",
        "fresh_term",
        "generation",
        "jobs",
        "name",
        "namespace",
        "next_run_at",
        "noticed_edit",
        "observed_generation",
        "refused",
        "reported_problem",
        "resource_version",
        "seen_while_running",
        "template_error",
        "template_ok_generation",
        "uid",
        "written_version",
    )
    _decoded: dict[str, Any] | None
    _raw: bytes | None
    namespace: str
    name: str
    resource_version: Any
    generation: int
    deleting: bool
    observed_generation: Any
    next_run_at: Any

    def __init__(
        self,
        *,
        uid: str,
        body: dict[str, Any],
        jobs: dict[str, ObservedJob] | None = None,
    ) -> None:
        self.uid = uid
        self.jobs: dict[str, ObservedJob] = jobs if jobs is not None else {}
        # When the scheduler must look at this trigger again (None: only on a change).
        self.due_at: Any = None
        # The leadership term in which this replica last read the trigger from the API
        # (not from the watch): before that, another leader may have moved its cursor.
        self.fresh_term = 0
        # The generation whose Job template passed the server-side dry run, and the last
        # problem reported, so that an invalid trigger is reported once, not in a storm.
        self.template_ok_generation: int | None = None
        self.template_error: tuple[int, str] | None = None
        self.reported_problem: tuple[int, str, str] | None = None
        # How long the last failed pass (403, a refused Job, an unexpected error) made the
        # scheduler wait before looking again; None after a pass that succeeded.
        self.backoff: timedelta | None = None
        # An edit of the schedule a pass noticed, (fingerprint, when): the epoch it dates
        # stays the same when the status patch that would record it fails.
        self.noticed_edit: tuple[str, datetime] | None = None
        # A Job create the API server refused: (generation, message, when to try again).
        self.refused: tuple[int, str, datetime] | None = None
        # The version the running pass's last status patch produced, and the newest
        # version a watch event brought while it ran: the same means the event was that
        # patch's echo, and the trigger needs no second pass for it.
        self.written_version: str | None = None
        self.seen_while_running: str | None = None
        self.body = body

    @property
    def body(self) -> dict[str, Any]:
        """The trigger as last seen (decoded on first use after `release_body`)."""
        if self._decoded is None:
            assert self._raw is not None  # a released body is kept as its JSON
            decoded: dict[str, Any] = orjson.loads(zlib.decompress(self._raw))
            self._decoded = decoded
            return decoded
        return self._decoded

    @body.setter
    def body(self, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        status = body.get("status")
        status = status if isinstance(status, dict) else {}
        self.namespace = str(metadata["namespace"])
        self.name = str(metadata["name"])
        self.resource_version = metadata.get("resourceVersion")
        self.generation = int(metadata.get("generation") or 0)
        self.deleting = bool(metadata.get("deletionTimestamp"))
        self.observed_generation = status.get("observedGeneration")
        self.next_run_at = status.get("nextRunAt")
        # Compressed when released, not here: a pass replaces the body with its status
        # patch's answer and perhaps a fresh read, and only the last of them is kept.
        self._raw = None
        self._decoded = body

    def update(self, body: dict[str, Any]) -> None:
        """Take `body` unless the copy held is newer (a watch event may have overtaken a
        read)."""
        if _newer(body["metadata"].get("resourceVersion"), self.resource_version):
            self.body = body

    def release_body(self) -> None:
        """Let the decoded body go; the JSON stays (changes made to the copy are lost).

        The JSON is compressed: smaller still, and a copy of exactly its size (orjson's
        output keeps the buffer it grew, several times the JSON).
        """
        if self._raw is None:
            assert self._decoded is not None
            self._raw = zlib.compress(orjson.dumps(self._decoded), 1)
        self._decoded = None

    @property
    def ref(self) -> TriggerRef:
        return TriggerRef(namespace=self.namespace, name=self.name, uid=self.uid)


# What no decision reads and a body can carry in bulk: server-side apply's bookkeeping,
# and kubectl's copy of the whole last-applied manifest.
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def compact(body: dict[str, Any]) -> dict[str, Any]:
    """`body` without what the scheduler never reads (managedFields, last-applied copy).

    A body from a watch can be several times the size of its spec; ten thousand of them
    are most of the cache's memory.
    """
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if "managedFields" not in metadata and _LAST_APPLIED not in annotations:
        return body
    slim = {key: value for key, value in metadata.items() if key != "managedFields"}
    if _LAST_APPLIED in annotations:
        slim["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    return {**body, "metadata": slim}


class TriggerCache:
    """Triggers by uid, and Jobs by their owner's uid (which may arrive before the owner)."""

    def __init__(self) -> None:
        self.triggers: dict[str, TriggerEntry] = {}
        self._orphan_jobs: dict[str, dict[str, ObservedJob]] = {}

    def upsert_trigger(self, body: dict[str, Any]) -> TriggerEntry:
        body = compact(body)
        uid = str(body["metadata"]["uid"])
        entry = self.triggers.get(uid)
        if entry is None:
            entry = TriggerEntry(uid=uid, body=body, jobs=self._orphan_jobs.pop(uid, {}))
            self.triggers[uid] = entry
        else:
            entry.update(body)
        return entry

    def remove_trigger(self, uid: str) -> TriggerEntry | None:
        return self.triggers.pop(uid, None)

    def upsert_job(self, body: dict[str, Any]) -> tuple[ObservedJob, ObservedJob | None]:
        """Record a Job; return its state and the state it had before (None if new)."""
        state = observe_job(body)
        jobs = self._jobs_of(state.trigger_uid)
        previous = jobs.get(state.name)
        if previous is not None and _after(previous.resource_version, state.resource_version):
            return previous, previous  # an older copy (from a listing): nothing new
        jobs[state.name] = state
        return state, previous

    def holds(self, plural: str, body: Mapping[str, Any]) -> bool:
        """Whether the cache holds this very version of a trigger ("scheduledtriggers")
        or trigger Job ("jobs"): a watch event of it would bring nothing new."""
        metadata = body.get("metadata") or {}
        version = metadata.get("resourceVersion")
        if not version:
            return False
        if plural == "jobs":
            trigger_uid = str((metadata.get("labels") or {}).get(LABEL_TRIGGER_UID, ""))
            entry = self.triggers.get(trigger_uid)
            jobs = entry.jobs if entry is not None else self._orphan_jobs.get(trigger_uid, {})
            job = jobs.get(str(metadata.get("name")))
            return (
                job is not None
                and job.resource_version == version
                and job.uid == metadata.get("uid")
            )
        entry = self.triggers.get(str(metadata.get("uid")))
        # An event older than the copy held is as stale as one of the same version: the
        # watch running behind the scheduler's own listing or patch response.
        return entry is not None and (
            version == entry.resource_version or _after(entry.resource_version, version)
        )

    def remove_job(self, body: dict[str, Any]) -> ObservedJob | None:
        labels = (body.get("metadata") or {}).get("labels") or {}
        uid = str(labels.get(LABEL_TRIGGER_UID, ""))
        return self._jobs_of(uid).pop(str(body["metadata"]["name"]), None)

    def orphan_jobs(self) -> list[ObservedJob]:
        """Jobs whose trigger is not (or no longer) in the cache."""
        return [job for owned in self._orphan_jobs.values() for job in owned.values()]

    def drop_unlisted(
        self,
        *,
        trigger_uids: set[str],
        triggers_version: str,
        job_keys: set[tuple[str, str]],
        jobs_version: str,
        namespace: str | None = None,
    ) -> tuple[list[TriggerEntry], list[ObservedJob]]:
        """Remove what full listings of the triggers and their Jobs show to be gone.

        The listings are given as what they held: the triggers' uids and the Jobs'
        (namespace, name), each with the resourceVersion it was read at. A cached object
        that its listing lacks was deleted, unless the cache holds a copy newer than the
        listing (it arrived by watch after the list was read). Returns what was dropped:
        after a watch relist kopf reports nothing for objects deleted meanwhile, and
        without this they would stay as ghosts. `namespace` is the one the listings
        cover (None: every namespace).
        """
        gone = [
            entry
            for uid, entry in self.triggers.items()
            if uid not in trigger_uids
            and namespace in (None, entry.namespace)
            and not _after(entry.resource_version, triggers_version)
        ]
        for entry in gone:
            del self.triggers[entry.uid]
        vanished: list[ObservedJob] = []
        for owned in [*(e.jobs for e in self.triggers.values()), *self._orphan_jobs.values()]:
            for name, state in list(owned.items()):
                if (
                    namespace in (None, state.namespace)
                    and (state.namespace, name) not in job_keys
                    and not _after(state.resource_version, jobs_version)
                ):
                    vanished.append(owned.pop(name))
        return gone, vanished

    def _jobs_of(self, trigger_uid: str) -> dict[str, ObservedJob]:
        entry = self.triggers.get(trigger_uid)
        if entry is not None:
            return entry.jobs
        return self._orphan_jobs.setdefault(trigger_uid, {})


def _after(version: Any, listing: str) -> bool:
    """Whether an object's resourceVersion is newer than a listing's (False if unknown)."""
    try:
        return int(version) > int(listing)
    except (TypeError, ValueError):
        return False


def _newer(candidate: Any, current: Any) -> bool:
    # resourceVersions are opaque, but etcd's are increasing integers; when they are
    # not integers, trust the order of arrival.
    try:
        return int(candidate) >= int(current)
    except (TypeError, ValueError):
        return True
