"""ScheduleCalendars on the real control plane: an edit re-plans the triggers that use it at
once, a missing calendar stops its trigger, and an excluded time is in the run history as
skipped, reason Excluded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import KubeCluster
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.models.api import CALENDAR_PLURAL, GROUP, VERSION
from trigger_operator.models.instants import parse_instant

pytestmark = pytest.mark.integration

Start = Callable[..., OperatorProcess]


class Calendars:
    """ScheduleCalendars of the test's namespace."""

    def __init__(self, cluster: KubeCluster, namespace: str) -> None:
        self.custom = cluster.custom()
        self.namespace = namespace

    def apply(self, name: str, **spec: Any) -> None:
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ScheduleCalendar",
            "metadata": {"name": name},
            "spec": spec,
        }
        try:
            current = cast(
                "dict[str, Any]",
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, CALENDAR_PLURAL, name
                ),
            )
        except ApiException as error:
            if error.status != 404:
                raise
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, CALENDAR_PLURAL, body
            )
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.custom.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, CALENDAR_PLURAL, name, body
        )


@pytest.fixture
def calendars(cluster: KubeCluster, namespace: str, crd: str) -> Calendars:
    return Calendars(cluster, namespace)


def _next_run(triggers: Triggers, name: str) -> str | None:
    value = triggers.status(name).get("nextRunAt")
    return str(value) if value else None


def test_a_calendar_edit_changes_the_next_run_of_every_trigger_using_it_within_a_second(
    cluster: KubeCluster, triggers: Triggers, calendars: Calendars, operators: Start
) -> None:
    # Hourly triggers; the calendar first excludes the whole of today and tomorrow (UTC),
    # so their next run lies the day after; the edit empties it.
    today = datetime.now(UTC).date()
    days = [today, today + timedelta(days=1)]
    calendars.apply("freeze", exclude={"dates": [day.isoformat() for day in days]})
    for name in ("first", "second"):
        triggers.create(manifest(name, schedule="0 * * * *", calendars=["freeze"]))
    triggers.create(manifest("unrelated", schedule="0 * * * *"))
    operators()
    for name in ("first", "second"):
        wait_for(lambda n=name: _next_run(triggers, n), timeout=30, message=f"{name} planned")  # type: ignore[misc]
        assert parse_instant(_next_run(triggers, name) or "").date() > days[-1]
    before = _next_run(triggers, "unrelated")

    calendars.apply("freeze", exclude={"dates": []})
    edited = time.monotonic()
    for name in ("first", "second"):
        wait_for(
            lambda n=name: parse_instant(_next_run(triggers, n) or "").date() <= days[-1],  # type: ignore[misc]
            timeout=10,
            interval=0.05,
            message=f"{name} re-planned",
        )
    took = time.monotonic() - edited
    print(f"calendar edit to both triggers re-planned: {took:.3f} s")

    assert took < 1.0, f"the edit took {took:.2f} s to reach both triggers"
    assert _next_run(triggers, "unrelated") == before
    assert triggers.jobs("first") == [] and triggers.jobs("second") == []


def test_a_missing_calendar_stops_the_trigger_until_it_is_created(
    triggers: Triggers, calendars: Calendars, operators: Start
) -> None:
    triggers.create(manifest("waiting", schedule="*/2 * * * * *", calendars=["absent"]))
    triggers.create(manifest("beside", schedule="*/2 * * * * *"))
    operators()
    ready = wait_for(
        lambda: (r := triggers.ready("waiting")) and r["status"] == "False" and r,
        timeout=30,
        message="Ready=False",
    )
    assert ready["reason"] == "CalendarNotFound"
    assert "ScheduleCalendar 'absent' not found" in ready["message"]
    # Positive evidence that its times came: the same schedule beside it ran three times.
    wait_for(lambda: len(triggers.jobs("beside")) >= 3, timeout=30, message="three runs beside")
    assert triggers.jobs("waiting") == []
    events = [e for e in triggers.events("waiting") if e.reason == "CalendarNotFound"]
    assert len(events) == 1 and (events[0].count or 1) == 1

    calendars.apply("absent", exclude={})

    wait_for(lambda: triggers.jobs("waiting"), timeout=30, message="runs once it exists")
    assert (triggers.ready("waiting") or {}).get("status") == "True"


def _history(url: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "trigger_operator", "history", *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_excluded_time_shows_as_skipped_excluded_in_history(
    triggers: Triggers, calendars: Calendars, operators: Start, tmp_path: Path
) -> None:
    # Every 2 s; a window excludes the seconds 0-29 of every minute.
    calendars.apply("halves", exclude={"windows": [{"schedule": "* * * * *", "duration": "30s"}]})
    triggers.create(manifest("halved", schedule="*/2 * * * * *", calendars=["halves"]))
    operators()
    url = f"sqlite+pysqlite:///{tmp_path / 'ledger.db'}"

    def rows() -> list[dict[str, Any]]:
        try:
            text = _history(url, "halved", "-n", triggers.namespace, "--limit", "0", "-o", "json")
        except AssertionError:
            return []
        return list(json.loads(text))

    def both_kinds() -> list[dict[str, Any]] | None:
        found = rows()
        statuses = {row["status"] for row in found}
        return found if "skipped" in statuses and statuses - {"skipped"} else None

    found = wait_for(
        both_kinds,
        timeout=90,
        message="an excluded and a started time in the history",
    )
    for row in found:
        second = parse_instant(row["scheduledFor"]).second
        if second < 30:
            assert (row["status"], row["reason"]) == ("skipped", "Excluded"), row
            assert row["message"] == "excluded by ScheduleCalendar halves"
        else:
            assert row["status"] != "skipped", row
    started = triggers.scheduled_times("halved")
    assert started and all(parse_instant(t).second >= 30 for t in started)
    table = _history(url, "halved", "-n", triggers.namespace, "--status", "skipped")
    assert "Excluded" in table
