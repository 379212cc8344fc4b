"""Which schedule a preview shows: the fields of a manifest, overridden by explicit values.

`trigger-operator preview` renders the times; this module only decides the schedule, with
`compile_schedule`, the function the scheduler uses, so a preview is what will run. Every
bad input is a `PreviewError` whose message names the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from trigger_operator.models.api import CALENDAR_KIND, KIND
from trigger_operator.models.calendar import CalendarSpec, Exclusions
from trigger_operator.models.spec import DaylightSaving, RepeatedTimes, SkippedTimes
from trigger_operator.schedule.calendars import NO_EXCLUSIONS, ExclusionSet, compile_exclusions
from trigger_operator.schedule.errors import ScheduleError
from trigger_operator.schedule.times import Schedule, compile_schedule

_Choice = TypeVar("_Choice", SkippedTimes, RepeatedTimes)


class PreviewError(ValueError):
    """A bad input; the message names the field and the problem."""


@dataclass(frozen=True, kw_only=True)
class PreviewRequest:
    """What to preview: a manifest's spec (empty without one) and the values given over it."""

    spec: Mapping[str, Any] = field(default_factory=dict)
    uid: str | None = None
    """The trigger's uid, which `H` in a cron field hashes (--uid, else metadata.uid)."""
    schedules: tuple[str, ...] = ()
    """Cron expressions given on the command line: one is `schedule`, more are `schedules`."""
    time_zone: str | None = None
    skipped_times: str | None = None
    repeated_times: str | None = None
    calendars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """ScheduleCalendar specs by name, from --calendar files."""


def trigger_spec(documents: Sequence[object], *, source: str) -> Mapping[str, Any]:
    """The spec of the first ScheduledTrigger among a manifest's YAML documents."""
    return _mapping(_first_trigger(documents, source=source).get("spec"), "spec")


def trigger_uid(documents: Sequence[object], *, source: str) -> str | None:
    """metadata.uid of the first ScheduledTrigger (a manifest read back from the cluster)."""
    metadata = _mapping(_first_trigger(documents, source=source).get("metadata"), "metadata")
    uid = metadata.get("uid")
    return str(uid) if uid else None


def calendar_specs(documents: Sequence[object], *, source: str) -> dict[str, Mapping[str, Any]]:
    """The specs of every ScheduleCalendar among a manifest's YAML documents, by name."""
    found: dict[str, Mapping[str, Any]] = {}
    for document in documents:
        if isinstance(document, Mapping) and document.get("kind") == CALENDAR_KIND:
            metadata = _mapping(document.get("metadata"), "metadata")
            found[str(metadata.get("name"))] = _mapping(document.get("spec"), "spec")
    if not found:
        raise PreviewError(f"{source}: no ScheduleCalendar in the manifest")
    return found


def preview_exclusions(request: PreviewRequest) -> ExclusionSet:
    """The exclusions `request` describes: the trigger's spec.calendars, found among the
    --calendar files (all of them when the trigger names none), and its spec.exclude."""
    spec = request.spec
    names = spec.get("calendars")
    if names is None:
        names = list(request.calendars)
    if not isinstance(names, list):
        raise PreviewError("spec.calendars: must be a list of names")
    named = []
    for index, name in enumerate(names):
        body = request.calendars.get(str(name))
        if body is None:
            raise PreviewError(
                f"spec.calendars[{index}]: ScheduleCalendar '{name}' is in no --calendar file"
            )
        try:
            calendar = CalendarSpec.model_validate(body)
        except ValidationError as error:
            raise PreviewError(f"ScheduleCalendar {name}: {_first_problem(error)}") from None
        named.append((str(name), calendar.time_zone, calendar.exclude))
    try:
        inline = Exclusions.model_validate(spec["exclude"]) if "exclude" in spec else None
    except ValidationError as error:
        raise PreviewError(f"spec.exclude: {_first_problem(error)}") from None
    if not named and inline is None:
        return NO_EXCLUSIONS
    try:
        return compile_exclusions(
            named, inline, time_zone=request.time_zone or _text(spec, "timeZone") or "UTC"
        )
    except ScheduleError as error:
        raise PreviewError(str(error)) from None


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _first_trigger(documents: Sequence[object], *, source: str) -> Mapping[str, Any]:
    triggers = [d for d in documents if isinstance(d, Mapping) and d.get("kind") == KIND]
    if not triggers:
        raise PreviewError(f"{source}: no ScheduledTrigger in the manifest")
    return triggers[0]


def preview_schedule(request: PreviewRequest) -> Schedule:
    """The compiled schedule `request` describes."""
    spec = request.spec
    schedule, schedules, run_at = _time_source(request)
    rules = _mapping(spec.get("daylightSaving"), "spec.daylightSaving")
    defaults = DaylightSaving()
    daylight_saving = DaylightSaving(
        skipped_times=_choice(
            SkippedTimes,
            request.skipped_times or rules.get("skippedTimes"),
            field="spec.daylightSaving.skippedTimes",
            default=defaults.skipped_times,
        ),
        repeated_times=_choice(
            RepeatedTimes,
            request.repeated_times or rules.get("repeatedTimes"),
            field="spec.daylightSaving.repeatedTimes",
            default=defaults.repeated_times,
        ),
    )
    try:
        return compile_schedule(
            schedule=schedule,
            schedules=schedules,
            run_at=run_at,
            time_zone=request.time_zone or _text(spec, "timeZone") or "UTC",
            daylight_saving=daylight_saving,
            hash_key=request.uid,
        )
    except ScheduleError as error:
        raise PreviewError(str(error)) from None


def _time_source(request: PreviewRequest) -> tuple[str | None, list[str] | None, str | None]:
    """(schedule, schedules, runAt): from the command line when given, else the manifest."""
    given = request.schedules
    if len(given) == 1:
        return given[0], None, None
    if given:
        return None, list(given), None
    spec = request.spec
    schedules = spec.get("schedules")
    if schedules is not None and (
        not isinstance(schedules, list) or not all(isinstance(s, str) for s in schedules)
    ):
        raise PreviewError("spec.schedules: must be a list of strings")
    schedule, run_at = _text(spec, "schedule"), _text(spec, "runAt")
    if schedule is None and schedules is None and run_at is None:
        raise PreviewError(
            "spec.schedule: give --schedule, or -f with a manifest that sets "
            "spec.schedule, spec.schedules or spec.runAt"
        )
    return schedule, schedules, run_at


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PreviewError(f"{field}: must be an object")
    return value


def _text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PreviewError(f"spec.{key}: must be a string")


def _choice(kind: type[_Choice], value: object, *, field: str, default: _Choice) -> _Choice:
    if value is None:
        return default
    if isinstance(value, str) and value in kind.__members__.values():
        return kind(value)
    allowed = ", ".join(member.value for member in kind)
    raise PreviewError(f"{field}: '{value}' is not one of {allowed}")
