"""The ScheduledTrigger CustomResourceDefinition, generated from the spec and status models.

The models are the one source of truth: `crds/scheduledtrigger.yaml` is the output of
`render_crd()` (`trigger-operator crd > crds/scheduledtrigger.yaml`), and a unit test
fails when the committed file drifts from it. Pydantic's JSON Schema is turned into a
Kubernetes structural schema: references inlined, `X | None` unwrapped (nullable in
status, where the operator writes nulls; in spec a null is pruned as if absent),
`dict[str, Any]` and free JSON marked `x-kubernetes-preserve-unknown-fields`, every
description kept. A schema keyword the conversion does not know is an error rather
than silently dropped, so a new constraint on a model cannot go missing from the CRD.

The rules a schema alone cannot express are CEL `x-kubernetes-validations`; what only
code can check (cron grammar, IANA zones) is reported on the object by the operator.
"""

from __future__ import annotations

from typing import Any

import yaml

from trigger_operator.models.api import (
    API_VERSION,
    CALENDAR_KIND,
    CALENDAR_PLURAL,
    CALENDAR_SHORT_NAMES,
    CALENDAR_SINGULAR,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from trigger_operator.models.calendar import CalendarSpec
from trigger_operator.models.spec import EXACTLY_ONE_MESSAGE, TriggerSpec
from trigger_operator.models.status import TriggerStatus

# One column cannot show "schedule, schedules or runAt": a printer column is one JSON path.
# Columns that read the spec are right the moment a trigger is applied, even before
# the operator has seen it; all but one of them show <none>.
PRINTER_COLUMNS: tuple[dict[str, Any], ...] = (
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
    {"name": "Schedules", "type": "string", "jsonPath": ".spec.schedules"},
    {"name": "Run At", "type": "string", "jsonPath": ".spec.runAt"},
    {"name": "Timezone", "type": "string", "jsonPath": ".spec.timeZone"},
    {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
    # A string: kubectl prints a future `date` as <invalid>.
    {"name": "Next Run", "type": "string", "jsonPath": ".status.nextRunAt"},
    {"name": "Last Run", "type": "date", "jsonPath": ".status.lastScheduleTime"},
    {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

SPEC_VALIDATIONS: tuple[dict[str, str], ...] = (
    {
        "rule": (
            "(has(self.schedule) ? 1 : 0) + (has(self.schedules) ? 1 : 0)"
            " + (has(self.runAt) ? 1 : 0) == 1"
        ),
        "message": EXACTLY_ONE_MESSAGE,
    },
)

CALENDAR_PRINTER_COLUMNS: tuple[dict[str, Any], ...] = (
    {"name": "Timezone", "type": "string", "jsonPath": ".spec.timeZone"},
    {"name": "Description", "type": "string", "jsonPath": ".spec.description"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)

_COPIED = (
    "type",
    "format",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
)
_IGNORED = ("title", "readOnly", "$defs")
_HANDLED = ("description", "default", "properties", "required", "items", "additionalProperties")


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition as a dict, ready to serialize."""
    spec_json = TriggerSpec.model_json_schema(by_alias=True, mode="validation")
    status_json = TriggerStatus.model_json_schema(by_alias=True, mode="serialization")
    spec = _Converter(spec_json, in_status=False).convert(spec_json)
    spec["x-kubernetes-validations"] = [dict(rule) for rule in SPEC_VALIDATIONS]
    status = _Converter(status_json, in_status=True).convert(status_json)
    schema = {
        "type": "object",
        "description": (
            "A ScheduledTrigger runs a one-shot Job on a cron schedule in a time zone, "
            "or once at runAt."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": f"The versioned schema of this object: {API_VERSION}.",
            },
            "kind": {
                "type": "string",
                "description": f"The REST resource this object represents: {KIND}.",
            },
            # The API server allows nothing but a type here (not even a description).
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(column) for column in PRINTER_COLUMNS],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def build_calendar_crd() -> dict[str, Any]:
    """The ScheduleCalendar CustomResourceDefinition as a dict (no status: nothing to report
    on a calendar itself; the triggers that use it show its problems)."""
    spec_json = CalendarSpec.model_json_schema(by_alias=True, mode="validation")
    spec = _Converter(spec_json, in_status=False).convert(spec_json)
    schema = {
        "type": "object",
        "description": (
            "A ScheduleCalendar holds dates, date ranges and recurring windows when the "
            "ScheduledTriggers that reference it (spec.calendars) do not run."
        ),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{CALENDAR_PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": CALENDAR_KIND,
                "listKind": f"{CALENDAR_KIND}List",
                "plural": CALENDAR_PLURAL,
                "singular": CALENDAR_SINGULAR,
                "shortNames": list(CALENDAR_SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [
                        dict(column) for column in CALENDAR_PRINTER_COLUMNS
                    ],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


_HEADER = "# Generated from trigger_operator/models by `trigger-operator crd{}`; do not edit.\n"


def render_crd() -> str:
    """The CustomResourceDefinition as the YAML committed in crds/scheduledtrigger.yaml."""
    body = yaml.safe_dump(build_crd(), sort_keys=False, width=100, allow_unicode=True)
    return _HEADER.format("") + body


def render_calendar_crd() -> str:
    """The ScheduleCalendar CRD as the YAML committed in crds/schedulecalendar.yaml."""
    body = yaml.safe_dump(build_calendar_crd(), sort_keys=False, width=100, allow_unicode=True)
    return _HEADER.format(" --kind ScheduleCalendar") + body


class _Converter:
    """Pydantic JSON Schema to a Kubernetes structural schema."""

    def __init__(self, root: dict[str, Any], *, in_status: bool) -> None:
        self._definitions: dict[str, Any] = root.get("$defs", {})
        self._in_status = in_status

    def convert(self, node: dict[str, Any]) -> dict[str, Any]:
        flat, nullable = self._flatten(node)
        unknown = (
            set(flat)
            - {*_COPIED, *_IGNORED, *_HANDLED}
            - {key for key in flat if key.startswith("x-kubernetes-")}
        )
        if unknown:
            raise ValueError(f"no CRD form for JSON Schema keywords {sorted(unknown)}")
        out: dict[str, Any] = {}
        if "description" in flat:
            out["description"] = " ".join(flat["description"].split())
        out.update((key, flat[key]) for key in _COPIED if key in flat)
        if flat.get("default") is not None and not self._in_status:
            out["default"] = flat["default"]
        self._convert_children(flat, out)
        out.update((key, value) for key, value in flat.items() if key.startswith("x-kubernetes-"))
        if "type" not in out:
            # Any JSON value at all (pydantic's JsonValue): the API server keeps it as is.
            out["x-kubernetes-preserve-unknown-fields"] = True
        if nullable and self._in_status:
            out["nullable"] = True
        return out

    def _convert_children(self, flat: dict[str, Any], out: dict[str, Any]) -> None:
        """The properties, items and additional properties of `flat`, converted into `out`."""
        if "properties" in flat:
            properties = flat["properties"]
            out["properties"] = {name: self.convert(sub) for name, sub in properties.items()}
            computed = {name for name, sub in properties.items() if sub.get("readOnly")}
            required = [name for name in flat.get("required", []) if name not in computed]
            if required:
                out["required"] = required
        if "items" in flat:
            out["items"] = self.convert(flat["items"])
        extra = flat.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = self.convert(extra)
        elif extra is True:
            out["x-kubernetes-preserve-unknown-fields"] = True

    def _flatten(self, node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Inline `$ref` and unwrap `X | None`; keys on the referring node win."""
        flat, nullable = dict(node), False
        while True:
            if "$ref" in flat:
                name = flat.pop("$ref").rsplit("/", 1)[-1]
                flat = {**self._definitions[name], **flat}
            elif "anyOf" in flat:
                options = flat.pop("anyOf")
                chosen = [option for option in options if option != {"type": "null"}]
                if len(chosen) != 1:
                    raise ValueError(f"no CRD form for a union of {chosen}")
                nullable = nullable or len(chosen) != len(options)
                flat = {**chosen[0], **flat}
            else:
                return flat, nullable
