"""How `get` and `describe` render triggers (no cluster, no database)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console

from trigger_operator.cli.history import print_wide
from trigger_operator.cli.triggers import (
    describe_document,
    local_time,
    render_describe,
    render_get_json,
    render_get_table,
)
from trigger_operator.ledger.records import LedgerStatus, RunKind
from trigger_operator.ledger.tables import Run

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def trigger(name: str = "nightly", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": "u-1",
            "creationTimestamp": "2026-11-24T12:00:00Z",
        },
        "spec": {
            "schedule": "30 2 * * *",
            "timeZone": "Europe/Berlin",
            "concurrencyPolicy": "Forbid",
            "payload": {"report": "sales"},
            "failurePolicy": {"suspendAfterConsecutiveFailures": 3},
            "jobTemplate": {"spec": {}},
        },
        "status": {
            "upcomingRuns": [
                "2026-11-27T01:30:00Z",
                "2026-11-28T01:30:00Z",
                "2026-11-29T01:30:00Z",
                "2026-11-30T01:30:00Z",
            ],
            "lastRun": {
                "name": "nightly-abc",
                "scheduledFor": "2026-11-26T01:30:00Z",
                "result": "Failed",
            },
            "active": [{"name": "nightly-def", "uid": "j-2"}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Scheduled",
                    "message": "next run at 2026-11-27T01:30:00Z",
                    "lastTransitionTime": "2026-11-26T11:00:00Z",
                }
            ],
            **status,
        },
    }


def printed(renderable: Any) -> str:
    out = io.StringIO()
    # Not a terminal: plain text, no colour codes.
    print_wide(Console(file=out, width=80, color_system=None), renderable)
    return out.getvalue()


def run(status: LedgerStatus, hour: int) -> Run:
    at = datetime(2026, 11, 26, hour, 30, tzinfo=UTC)
    return Run(
        key=f"u-1/{at.isoformat()}",
        namespace="team-a",
        trigger_name="nightly",
        trigger_uid="u-1",
        scheduled_for=at,
        kind=RunKind.SCHEDULED,
        job_name=f"nightly-{hour}",
        status=status,
        reason="BackoffLimitExceeded" if status is LedgerStatus.FAILED else None,
        created_at=at,
        updated_at=at,
        started_at=at,
        finished_at=at.replace(minute=31),
        attempts=1,
    )


def test_local_times_carry_the_zone_of_the_reader() -> None:
    instant = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    assert local_time(instant, BERLIN) == "2026-11-27 02:30 CET"
    assert local_time(instant, UTC, seconds=True) == "2026-11-27 01:30:00 UTC"


def test_get_table_shows_the_last_result_and_the_next_three_runs_in_the_local_zone() -> None:
    text = printed(
        render_get_table([trigger()], now=NOW, zone=BERLIN, show_namespace=False)
    ).splitlines()

    assert text[0].split() == [
        "NAME",
        "SCHEDULE",
        "TIMEZONE",
        "SUSPEND",
        "READY",
        "LAST",
        "RESULT",
        "NEXT",
        "RUNS",
        "ACTIVE",
        "AGE",
    ]
    row = text[1]
    assert row.split()[:10] == [
        "nightly",
        "30",
        "2",
        "*",
        "*",
        "*",
        "Europe/Berlin",
        "False",
        "Scheduled",
        "Failed",
    ]
    assert "2026-11-27 02:30 CET, 2026-11-28 02:30 CET, 2026-11-29 02:30 CET" in row
    assert "2026-11-30" not in row  # three, not all of status.upcomingRuns
    assert row.split()[-2:] == ["1", "2d00h"]


def test_get_table_names_the_namespace_for_all_namespaces_and_dashes_what_is_unknown() -> None:
    bare = {
        "metadata": {"name": "new", "namespace": "team-b"},
        "spec": {"runAt": "2027-01-01T00:00:00Z"},
    }
    text = printed(render_get_table([bare], now=NOW, zone=UTC, show_namespace=True))

    header, row = text.splitlines()
    assert header.startswith("NAMESPACE   NAME")
    assert row.split() == [
        "team-b",
        "new",
        "2027-01-01T00:00:00Z",
        "UTC",
        "False",
        "-",
        "-",
        "-",
        "0",
        "-",
    ]


def test_get_json_keeps_utc_instants_and_every_field() -> None:
    [summary] = json.loads(render_get_json([trigger()], now=NOW))

    assert summary["name"] == "nightly"
    assert summary["nextRuns"] == [
        "2026-11-27T01:30:00Z",
        "2026-11-28T01:30:00Z",
        "2026-11-29T01:30:00Z",
    ]
    assert summary["lastRun"]["result"] == "Failed"
    assert summary["ready"] == {
        "status": "True",
        "reason": "Scheduled",
        "message": "next run at 2026-11-27T01:30:00Z",
    }
    assert (summary["active"], summary["ageSeconds"]) == (1, 172800)


def test_describe_shows_spec_runs_conditions_and_events_in_sections() -> None:
    events = [
        {
            "type": "Warning",
            "reason": "SuspendedAfterFailures",
            "message": "3 consecutive failed runs",
            "count": 1,
            "lastTimestamp": "2026-11-26T11:58:00Z",
            "metadata": {},
        }
    ]
    runs = [run(LedgerStatus.SUCCEEDED, 1), run(LedgerStatus.FAILED, 2)]
    doc = describe_document(
        trigger(failures={"consecutive": 2}), runs=runs, events=events, ledger_error=None, now=NOW
    )
    text = printed(render_describe(doc, runs=runs, now=NOW, zone=UTC))

    assert "Schedule:            30 2 * * * (Europe/Berlin)" in text
    assert "Concurrency:         Forbid" in text
    assert "suspend after 3 consecutive failures (2 now)" in text
    assert 'Payload:             {"report": "sales"}' in text
    assert "2026-11-27 01:30 UTC  (2026-11-27T01:30:00Z)" in text
    assert "Active:              nightly-def" in text
    lines = text.splitlines()
    runs_at = lines.index("Last runs (ledger):")
    assert lines[runs_at + 1].split()[:4] == ["SCHEDULED", "FOR", "KIND", "STATUS"]
    assert "succeeded" in lines[runs_at + 2] and "failed" in lines[runs_at + 3]
    assert "BackoffLimitExceeded" in lines[runs_at + 3]
    assert any(line.split()[:3] == ["Ready", "True", "Scheduled"] for line in lines)
    events_at = lines.index("Events:")
    assert lines[events_at + 2].split()[:4] == ["Warning", "SuspendedAfterFailures", "2m00s", "1"]


def test_describe_says_why_the_ledger_could_not_be_read_and_json_carries_it() -> None:
    doc = describe_document(
        trigger(), runs=[], events=[], ledger_error="no ledger at x.db", now=NOW
    )
    text = printed(render_describe(doc, runs=[], now=NOW, zone=UTC))

    assert "Last runs (ledger):\n  no ledger at x.db" in text
    assert "Events:\n  none" in text
    assert doc["ledgerError"] == "no ledger at x.db"
    assert "jobTemplate" not in doc["spec"]
    assert json.loads(json.dumps(doc))["upcomingRuns"][0] == "2026-11-27T01:30:00Z"
