"""The CRD: generated from the models, committed as generated, structural and described."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from trigger_operator.cli import main
from trigger_operator.models.crd import (
    build_calendar_crd,
    build_crd,
    render_calendar_crd,
    render_crd,
)
from trigger_operator.models.instants import RFC3339_PATTERN
from trigger_operator.models.spec import (
    DaylightSaving,
    JobTemplate,
    JobTemplateMetadata,
    TriggerSpec,
)
from trigger_operator.models.status import (
    ActiveRun,
    Condition,
    LastRun,
    RunNowRecord,
    TriggerStatus,
)

COMMITTED = Path(__file__).resolve().parents[3] / "crds" / "scheduledtrigger.yaml"


def version() -> dict[str, Any]:
    (only,) = build_crd()["spec"]["versions"]
    return dict(only)


def schema() -> dict[str, Any]:
    return dict(version()["schema"]["openAPIV3Schema"])


def test_the_committed_crd_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == render_crd(), (
        "crds/scheduledtrigger.yaml is stale: "
        "run `trigger-operator crd > crds/scheduledtrigger.yaml`"
    )


def test_the_crd_command_prints_the_generated_crd() -> None:
    result = CliRunner().invoke(main, ["crd"])
    assert result.exit_code == 0
    assert result.stdout == render_crd()
    assert yaml.safe_load(result.stdout) == build_crd()


def test_names_scope_and_status_subresource() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "scheduledtriggers.triggers.dev"
    assert crd["spec"]["group"] == "triggers.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "ScheduledTrigger",
        "listKind": "ScheduledTriggerList",
        "plural": "scheduledtriggers",
        "singular": "scheduledtrigger",
        "shortNames": ["strig"],
    }
    assert version()["name"] == "v1alpha1"
    assert version()["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = [
        (c["name"].upper(), c["type"], c["jsonPath"]) for c in version()["additionalPrinterColumns"]
    ]
    assert columns == [
        ("SCHEDULE", "string", ".spec.schedule"),
        ("SCHEDULES", "string", ".spec.schedules"),
        ("RUN AT", "string", ".spec.runAt"),
        ("TIMEZONE", "string", ".spec.timeZone"),
        ("SUSPEND", "boolean", ".spec.suspend"),
        ("NEXT RUN", "string", ".status.nextRunAt"),
        ("LAST RUN", "date", ".status.lastScheduleTime"),
        ("ACTIVE", "integer", ".status.activeCount"),
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    # Array items and map values are described by the field that holds them; metadata is
    # the standard ObjectMeta, which a CRD may not describe.
    undocumented = [
        path or "<root>"
        for path, node in walk(schema())
        if not path.endswith(("[]", "{}")) and path != ".metadata" and not node.get("description")
    ]
    assert undocumented == []


def test_the_schema_is_structural() -> None:
    for path, node in walk(schema()):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "readOnly"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path


@pytest.mark.parametrize(
    ("model", "path"),
    [
        (TriggerSpec, ".spec"),
        (DaylightSaving, ".spec.daylightSaving"),
        (JobTemplate, ".spec.jobTemplate"),
        (JobTemplateMetadata, ".spec.jobTemplate.metadata"),
        (TriggerStatus, ".status"),
        (LastRun, ".status.lastRun"),
        (ActiveRun, ".status.active[]"),
        (Condition, ".status.conditions[]"),
        (RunNowRecord, ".status.runNow[]"),
    ],
)
def test_every_model_field_is_in_the_crd_and_nothing_else(
    model: type[BaseModel], path: str
) -> None:
    nodes = dict(walk(schema()))
    fields = {info.alias or name for name, info in model.model_fields.items()}
    fields |= {info.alias or name for name, info in model.model_computed_fields.items()}
    assert set(nodes[path]["properties"]) == fields


def test_admission_rejects_what_a_schema_can_see() -> None:
    spec = schema()["properties"]["spec"]
    fields = spec["properties"]
    assert spec["x-kubernetes-validations"] == [
        {
            "rule": (
                "(has(self.schedule) ? 1 : 0) + (has(self.schedules) ? 1 : 0)"
                " + (has(self.runAt) ? 1 : 0) == 1"
            ),
            "message": "spec: exactly one of schedule, schedules and runAt must be set",
        }
    ]
    assert spec["required"] == ["jobTemplate"]
    assert (fields["schedules"]["minItems"], fields["schedules"]["maxItems"]) == (1, 16)
    assert fields["runAt"]["format"] == "date-time"
    assert fields["runAt"]["pattern"] == RFC3339_PATTERN
    assert fields["concurrencyPolicy"]["enum"] == ["Allow", "Forbid", "Replace", "Queue"]
    assert fields["catchUp"]["enum"] == ["Latest", "All", "None"]
    daylight = fields["daylightSaving"]["properties"]
    assert daylight["skippedTimes"]["enum"] == ["RunAfterGap", "Skip"]
    assert daylight["repeatedTimes"]["enum"] == ["Auto", "Once", "Twice"]
    assert fields["maxCatchUpRuns"]["minimum"] == 1
    for name in (
        "startingDeadlineSeconds",
        "jitterSeconds",
        "successfulRunsHistoryLimit",
        "failedRunsHistoryLimit",
    ):
        assert fields[name]["minimum"] == 0, name


def test_the_api_server_fills_the_defaults() -> None:
    fields = schema()["properties"]["spec"]["properties"]
    defaults = {name: node["default"] for name, node in fields.items() if "default" in node}
    assert defaults == {
        "timeZone": "UTC",
        "suspend": False,
        "concurrencyPolicy": "Allow",
        "catchUp": "Latest",
        "maxCatchUpRuns": 10,
        "jitterSeconds": 0,
        "daylightSaving": {},
        "successfulRunsHistoryLimit": 3,
        "failedRunsHistoryLimit": 1,
    }


def test_free_form_fields_keep_unknown_fields() -> None:
    fields = schema()["properties"]["spec"]["properties"]
    assert fields["payload"] == {
        "description": fields["payload"]["description"],
        "x-kubernetes-preserve-unknown-fields": True,
    }
    job_spec = fields["jobTemplate"]["properties"]["spec"]
    assert job_spec["type"] == "object"
    assert job_spec["x-kubernetes-preserve-unknown-fields"] is True


def test_status_instants_are_nullable_date_times() -> None:
    fields = schema()["properties"]["status"]["properties"]
    for name in (
        "nextRunAt",
        "lastScheduleTime",
        "lastSuccessfulTime",
        "lastMissedTime",
        "cursor",
        "specEpoch",
    ):
        assert fields[name]["format"] == "date-time", name
        assert fields[name]["nullable"] is True, name
    assert [
        path for path, node in walk(schema()["properties"]["status"]) if "default" in node
    ] == []


def test_the_committed_calendar_crd_is_the_generated_one() -> None:
    committed = COMMITTED.parent / "schedulecalendar.yaml"
    assert committed.read_text() == render_calendar_crd(), (
        "crds/schedulecalendar.yaml is stale: run "
        "`trigger-operator crd --kind ScheduleCalendar > crds/schedulecalendar.yaml`"
    )
    result = CliRunner().invoke(main, ["crd", "--kind", "ScheduleCalendar"])
    assert result.stdout == render_calendar_crd()


def test_the_calendar_crd_checks_shapes_and_shows_its_zone() -> None:
    crd = build_calendar_crd()
    (only,) = crd["spec"]["versions"]
    assert crd["metadata"]["name"] == "schedulecalendars.triggers.dev"
    assert [c["name"] for c in only["additionalPrinterColumns"]] == [
        "Timezone",
        "Description",
        "Age",
    ]
    exclude = only["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["exclude"]
    fields = exclude["properties"]
    assert fields["dates"]["items"]["pattern"] == r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert fields["yearly"]["items"]["pattern"] == r"^[0-9]{2}-[0-9]{2}$"
    assert fields["ranges"]["items"]["x-kubernetes-validations"] == [
        {"rule": "self.start <= self.end", "message": "end is before start"}
    ]
    assert fields["windows"]["items"]["required"] == ["schedule", "duration"]
