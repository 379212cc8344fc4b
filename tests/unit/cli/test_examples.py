"""The manifests in examples/ are valid, and the preview the README shows is what runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from trigger_operator.cli.preview import preview
from trigger_operator.models.calendar import CalendarSpec
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.schedule.calendars import compile_exclusions
from trigger_operator.schedule.times import schedule_of

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_compiles(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document["kind"] == "ScheduledTrigger":
            schedule_of(TriggerSpec.model_validate(document["spec"]), hash_key="example-uid")
        else:
            assert document["kind"] == "ScheduleCalendar"
            calendar = CalendarSpec.model_validate(document["spec"])
            compile_exclusions([("c", calendar.time_zone, calendar.exclude)], None, time_zone="UTC")


def test_the_business_days_example_previews_as_the_readme_shows() -> None:
    example = str(EXAMPLES / "business-days-with-holidays.yaml")
    result = CliRunner().invoke(
        preview,
        ["-f", example, "--calendar", example, "--after", "2026-12-23T12:00:00Z", "--count", "3"],
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "2027-01-04T08:00:00Z\n2027-01-05T08:00:00Z\n2027-01-06T08:00:00Z\n"
