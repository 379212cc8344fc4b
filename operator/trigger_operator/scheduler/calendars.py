"""The ScheduleCalendars every replica keeps from watch events, and what a trigger's resolve to.

`CalendarStore` holds each calendar's body by (namespace, name). `resolve` turns a
trigger's `spec.calendars` and `spec.exclude` into the compiled `ExclusionSet` the planner
takes, or raises the ScheduleError the trigger shows: `CalendarNotFound` for a name that
is not (or no longer) in its namespace, `InvalidCalendar` for one the operator cannot
read. A missing calendar stops the trigger instead of running it without the exclusion:
a calendar exists to keep runs from happening (a holiday, a freeze, a maintenance
window), so running through a typo or a calendar deleted by mistake would do exactly what
its author wanted prevented; not running is visible (Ready=False, an Event) and is fixed
by creating the calendar, after which the trigger runs again from then on.

Compiled sets are kept per (namespace, names, resourceVersions, the trigger's own
exclusions and zone), so a thousand triggers on one calendar compile it once. Which
triggers list which calendar is kept as an index fed by the trigger events (`track`),
so a calendar event finds its triggers without decoding every cached body.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from trigger_operator.models.calendar import CalendarSpec
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.schedule.calendars import (
    NO_EXCLUSIONS,
    CalendarNotFound,
    ExclusionSet,
    InvalidCalendar,
    compile_exclusions,
)

_CACHE_LIMIT = 4096


class CalendarStore:
    """ScheduleCalendar bodies by (namespace, name), and their compiled exclusions."""

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self._compiled: dict[tuple[Any, ...], ExclusionSet] = {}
        self._users: dict[tuple[str, str], set[str]] = {}
        self._uses: dict[str, tuple[tuple[str, str], ...]] = {}

    def track(self, uid: str, body: dict[str, Any]) -> None:
        """Note which calendars the trigger `body` lists (read raw: a trigger whose spec is
        otherwise invalid is still looked at again when its calendar changes)."""
        self.untrack(uid)
        namespace = str((body.get("metadata") or {}).get("namespace"))
        listed = (body.get("spec") or {}).get("calendars") or []
        if not isinstance(listed, list) or not listed:
            return
        keys = tuple((namespace, str(name)) for name in listed)
        self._uses[uid] = keys
        for key in keys:
            self._users.setdefault(key, set()).add(uid)

    def untrack(self, uid: str) -> None:
        for key in self._uses.pop(uid, ()):
            users = self._users.get(key)
            if users is not None:
                users.discard(uid)
                if not users:
                    del self._users[key]

    def users(self, namespace: str, name: str) -> list[str]:
        """The uids of the triggers that list calendar `name` of `namespace`."""
        return sorted(self._users.get((namespace, name), ()))

    def upsert(self, body: dict[str, Any]) -> tuple[str, str]:
        """Keep the newest copy of a calendar; return its (namespace, name)."""
        key = _key(body)
        self._bodies[key] = body
        return key

    def remove(self, body: dict[str, Any]) -> tuple[str, str]:
        key = _key(body)
        self._bodies.pop(key, None)
        return key

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._bodies.get((namespace, name))

    def resolve(self, namespace: str, spec: TriggerSpec) -> ExclusionSet:
        """The trigger's exclusions; raise CalendarNotFound or InvalidCalendar."""
        names = tuple(spec.calendars or ())
        if not names and spec.exclude is None:
            return NO_EXCLUSIONS
        bodies = []
        for index, name in enumerate(names):
            body = self._bodies.get((namespace, name))
            if body is None:
                raise CalendarNotFound(
                    f"spec.calendars[{index}]",
                    f"ScheduleCalendar '{name}' not found in namespace {namespace}",
                )
            bodies.append(body)
        inline = spec.exclude.model_dump(mode="json") if spec.exclude is not None else None
        versions = tuple(str(b["metadata"].get("resourceVersion")) for b in bodies)
        cache_key = (namespace, names, versions, spec.time_zone, json.dumps(inline, sort_keys=True))
        found = self._compiled.get(cache_key)
        if found is not None:
            return found
        named = [
            (name, _calendar_spec(name, body)) for name, body in zip(names, bodies, strict=True)
        ]
        compiled = compile_exclusions(
            [(name, calendar.time_zone, calendar.exclude) for name, calendar in named],
            spec.exclude,
            time_zone=spec.time_zone,
        )
        if len(self._compiled) >= _CACHE_LIMIT:
            self._compiled.clear()
        self._compiled[cache_key] = compiled
        return compiled


def _key(body: dict[str, Any]) -> tuple[str, str]:
    metadata = body["metadata"]
    return str(metadata["namespace"]), str(metadata["name"])


def _calendar_spec(name: str, body: dict[str, Any]) -> CalendarSpec:
    try:
        return CalendarSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidCalendar(
            f"ScheduleCalendar {name}: spec.{where}".rstrip("."), first["msg"]
        ) from None
