"""`trigger-operator preview`: next fire times from flags or a manifest, one-line errors."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from trigger_operator.cli.preview import preview
from trigger_operator.clock import SystemClock
from trigger_operator.models.instants import parse_instant

MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: triggers.dev/v1alpha1
kind: ScheduledTrigger
metadata: {name: nightly-report, namespace: team-a}
spec:
  schedule: "30 2 * * *"
  timeZone: America/New_York
  daylightSaving: {skippedTimes: Skip}
  jobTemplate: {spec: {}}
"""


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(preview, list(args), input=stdin)


def test_prints_the_next_times_one_rfc3339_instant_per_line() -> None:
    result = run(
        "--schedule",
        "30 2 * * *",
        "--time-zone",
        "America/New_York",
        "--after",
        "2026-03-07T00:00:00Z",
        "--count",
        "3",
    )
    assert result.exit_code == 0
    assert result.stdout == "2026-03-07T07:30:00Z\n2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z\n"
    assert result.stderr == ""


def test_prints_a_json_list_with_output_json() -> None:
    result = run(
        "--schedule", "@hourly", "--after", "2026-01-01T00:00:00Z", "--count", "2", "-o", "json"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]


def test_after_is_exclusive_and_read_with_its_offset() -> None:
    result = run("--schedule", "0 * * * *", "--after", "2026-01-01T02:00:00+01:00", "--count", "1")
    assert result.stdout == "2026-01-01T02:00:00Z\n"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--skipped-times", "RunAfterGap"], "2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z\n"),
        (["--skipped-times", "Skip"], "2026-03-09T06:30:00Z\n2026-03-10T06:30:00Z\n"),
    ],
)
def test_daylight_saving_flags_choose_the_rule(flags: list[str], expected: str) -> None:
    result = run(
        "--schedule",
        "30 2 * * *",
        "--time-zone",
        "America/New_York",
        "--after",
        "2026-03-08T00:00:00Z",
        "--count",
        "2",
        *flags,
    )
    assert result.stdout == expected


def test_repeated_times_flag_chooses_the_fold_rule() -> None:
    result = run(
        "--schedule",
        "30 1 * * *",
        "--time-zone",
        "America/New_York",
        "--after",
        "2026-11-01T00:00:00Z",
        "--count",
        "2",
        "--repeated-times",
        "Twice",
    )
    assert result.stdout == "2026-11-01T05:30:00Z\n2026-11-01T06:30:00Z\n"


def test_a_manifest_supplies_schedule_zone_and_daylight_saving(tmp_path: Path) -> None:
    manifest = tmp_path / "trigger.yaml"
    manifest.write_text(MANIFEST)
    result = run("-f", str(manifest), "--after", "2026-03-07T12:00:00Z", "--count", "2")
    assert result.exit_code == 0
    assert result.stdout == "2026-03-09T06:30:00Z\n2026-03-10T06:30:00Z\n"


def test_flags_override_the_manifest() -> None:
    result = run(
        "-f",
        "-",
        "--schedule",
        "0 12 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--after",
        "2026-03-07T12:00:00Z",
        "--count",
        "1",
        stdin=MANIFEST,
    )
    assert result.stdout == "2026-03-08T11:00:00Z\n"


def test_a_manifest_with_run_at_prints_that_one_instant() -> None:
    manifest = MANIFEST.replace('schedule: "30 2 * * *"', 'runAt: "2026-12-01T10:00:00+01:00"')
    result = run("-f", "-", "--after", "2026-01-01T00:00:00Z", stdin=manifest)
    assert result.stdout == "2026-12-01T09:00:00Z\n"
    later = run("-f", "-", "--after", "2026-12-01T09:00:00Z", "-o", "json", stdin=manifest)
    assert later.stdout == "[]\n"


def test_without_after_the_times_follow_now() -> None:
    before = SystemClock().now()
    result = run("--schedule", "* * * * * *", "--count", "1")
    after = SystemClock().now()
    instant = parse_instant(result.stdout.strip())
    assert before < instant <= after + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("args", "stdin", "message", "code"),
    [
        (
            ["--schedule", "61 * * * *"],
            None,
            "error: spec.schedule: minute field '61' out of range 0-59\n",
            1,
        ),
        (
            ["--schedule", "0 0 30 2 *"],
            None,
            "error: spec.schedule: never fires: day-of-month field '30' has no day in month "
            "field '2'\n",
            1,
        ),
        (
            ["--schedule", "@daily", "--time-zone", "Mars/Olympus"],
            None,
            "error: spec.timeZone: unknown time zone 'Mars/Olympus'; use an IANA name such as "
            "Europe/Berlin\n",
            1,
        ),
        (
            ["--schedule", "@daily", "--after", "2026-01-01T00:00:00"],
            None,
            "error: --after: '2026-01-01T00:00:00' has no UTC offset; add Z for UTC or an offset "
            "such as +01:00\n",
            1,
        ),
        (
            ["--schedule", "@daily", "--skipped-times", "Later"],
            None,
            "error: spec.daylightSaving.skippedTimes: 'Later' is not one of RunAfterGap, Skip\n",
            1,
        ),
        (
            ["--schedule", "@daily", "--repeated-times", "Thrice"],
            None,
            "error: spec.daylightSaving.repeatedTimes: 'Thrice' is not one of Auto, Once, Twice\n",
            1,
        ),
        (
            [],
            None,
            "error: spec.schedule: give --schedule, or -f with a manifest that sets spec.schedule, "
            "spec.schedules or spec.runAt\n",
            1,
        ),
        (
            ["-f", "-"],
            "kind: ConfigMap\n",
            "error: <stdin>: no ScheduledTrigger in the manifest\n",
            1,
        ),
        (
            ["-f", "-"],
            "kind: ScheduledTrigger\nspec: {runAt: tomorrow}\n",
            "error: spec.runAt: 'tomorrow' is not an RFC 3339 date-time such as "
            "2026-12-01T09:00:00Z\n",
            1,
        ),
        (
            ["-f", "-"],
            "kind: ScheduledTrigger\nspec: {schedule: 5}\n",
            "error: spec.schedule: must be a string\n",
            1,
        ),
    ],
)
def test_bad_input_exits_non_zero_with_one_line_naming_the_field(
    args: list[str], stdin: str | None, message: str, code: int
) -> None:
    result = run(*args, stdin=stdin)
    assert result.exit_code == code
    assert result.stderr == message
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "names"),
    [(["--schedule", "@daily", "--count", "0"], "--count"), (["--bogus"], "--bogus")],
)
def test_a_bad_command_line_exits_2_with_one_line_instead_of_a_usage_block(
    args: list[str], names: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert names in result.stderr
    assert result.stderr.count("\n") == 1


def test_h_is_hashed_from_the_uid_given_and_refused_without_one() -> None:
    args = ["--schedule", "H H * * *", "--after", "2026-01-01T00:00:00Z", "--count", "2"]
    first = run(*args, "--uid", "0b6c3c9e-1111-4d7e-9d1a-000000000001")
    again = run(*args, "--uid", "0b6c3c9e-1111-4d7e-9d1a-000000000001")
    other = run(*args, "--uid", "0b6c3c9e-1111-4d7e-9d1a-000000000002")
    assert first.exit_code == 0 and first.stdout == again.stdout
    assert first.stdout != other.stdout
    missing = run(*args)
    assert missing.exit_code == 1
    assert "H is hashed from the trigger's uid" in missing.stderr


def test_h_takes_the_uid_of_a_manifest_read_back_from_the_cluster(tmp_path: Path) -> None:
    manifest = tmp_path / "trigger.yaml"
    manifest.write_text(
        MANIFEST.replace("namespace: team-a}", "namespace: team-a, uid: abc}").replace(
            '"30 2 * * *"', '"H 2 * * *"'
        )
    )
    from_file = run("-f", str(manifest), "--after", "2026-01-01T00:00:00Z", "--count", "1")
    given = run(
        "--schedule",
        "H 2 * * *",
        "--time-zone",
        "America/New_York",
        "--uid",
        "abc",
        "--after",
        "2026-01-01T00:00:00Z",
        "--count",
        "1",
    )
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.stdout == given.stdout


def test_several_schedules_preview_their_union_each_time_once(tmp_path: Path) -> None:
    flags = run(
        "--schedule",
        "0 9 * * *",
        "--schedule",
        "0 9,17 * * MON",
        "--after",
        "2026-01-04T00:00:00Z",
        "--count",
        "3",
    )
    assert flags.exit_code == 0, flags.stderr
    assert flags.stdout == "2026-01-04T09:00:00Z\n2026-01-05T09:00:00Z\n2026-01-05T17:00:00Z\n"
    manifest = tmp_path / "trigger.yaml"
    manifest.write_text(
        MANIFEST.replace(
            'schedule: "30 2 * * *"', 'schedules: ["0 9 * * *", "0 9,17 * * MON"]'
        ).replace("America/New_York", "UTC")
    )
    from_file = run("-f", str(manifest), "--after", "2026-01-04T00:00:00Z", "--count", "3")
    assert from_file.stdout == flags.stdout


CALENDAR = """\
apiVersion: triggers.dev/v1alpha1
kind: ScheduleCalendar
metadata: {name: holidays, namespace: team-a}
spec:
  timeZone: Europe/Berlin
  exclude:
    yearly: ["12-25", "12-26"]
    windows: [{schedule: "0 23 * * *", duration: 2h}]
"""


def test_a_calendar_file_leaves_its_excluded_times_out(tmp_path: Path) -> None:
    calendar = tmp_path / "holidays.yaml"
    calendar.write_text(CALENDAR)
    args = ["--schedule", "0 0 * * *", "--time-zone", "Europe/Berlin"]
    args += ["--after", "2026-12-23T12:00:00Z", "--count", "2"]
    plain = run(*args)
    assert plain.stdout == "2026-12-23T23:00:00Z\n2026-12-24T23:00:00Z\n"
    excluded = run(*args, "--calendar", str(calendar))
    assert excluded.exit_code == 0, excluded.stderr
    # Midnight is inside the 23:00-01:00 window every night, and 12-25 and 12-26 are
    # holidays: every time is excluded, and the search ends instead of running forever.
    assert excluded.stdout == ""
    hourly = run(
        "--schedule",
        "0 9 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--calendar",
        str(calendar),
        "--after",
        "2026-12-24T12:00:00Z",
        "--count",
        "2",
    )
    assert hourly.stdout == "2026-12-27T08:00:00Z\n2026-12-28T08:00:00Z\n"


def test_a_trigger_names_the_calendars_it_uses_and_a_missing_one_is_an_error(
    tmp_path: Path,
) -> None:
    calendar = tmp_path / "holidays.yaml"
    calendar.write_text(CALENDAR)
    trigger = tmp_path / "trigger.yaml"
    trigger.write_text(
        MANIFEST.replace(
            "timeZone: America/New_York", "timeZone: Europe/Berlin\n  calendars: [holidays]"
        )
        .replace('"30 2 * * *"', '"0 9 * * *"')
        .replace("daylightSaving: {skippedTimes: Skip}", 'exclude: {dates: ["2026-12-28"]}')
    )
    result = run(
        "-f",
        str(trigger),
        "--calendar",
        str(calendar),
        "--after",
        "2026-12-24T12:00:00Z",
        "--count",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "2026-12-27T08:00:00Z\n2026-12-29T08:00:00Z\n"
    missing = run("-f", str(trigger), "--after", "2026-12-24T12:00:00Z")
    assert missing.exit_code == 1
    assert missing.stderr == (
        "error: spec.calendars[0]: ScheduleCalendar 'holidays' is in no --calendar file\n"
    )
