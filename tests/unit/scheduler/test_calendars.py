"""Calendars in the scheduler: a missing one stops the trigger, an excluded time is a skipped
row naming the calendar, and a calendar event re-plans the triggers that use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.scheduler.test_reconcile import NAMESPACE, World, at
from trigger_operator.ledger.records import LedgerStatus
from trigger_operator.scheduler.calendars import CalendarStore
from trigger_operator.scheduler.evidence import trigger_evidence
from trigger_operator.scheduler.loop import Scheduler
from trigger_operator.scheduler.status import status_of


def calendar(name: str = "maintenance", *, version: int = 1, **exclude: Any) -> dict[str, Any]:
    return {
        "apiVersion": "triggers.dev/v1alpha1",
        "kind": "ScheduleCalendar",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(version)},
        "spec": {"timeZone": "UTC", "exclude": exclude},
    }


@pytest.fixture
def world() -> Iterator[World]:
    made = World()
    yield made
    made.ledger.close()


def scheduler_of(world: World) -> Scheduler:
    return Scheduler(
        reconciler=world.reconciler,
        recorder=world.reconciler.recorder,
        cache=world.cache,
        gate=world.gate,
        clock=world.clock,
        concurrency=1,
    )


async def test_a_missing_calendar_stops_the_trigger_with_one_event_and_no_runs(
    world: World,
) -> None:
    entry = world.trigger(schedule="*/10 * * * *", calendars=["maintenance"])
    world.at(at(2, 10))

    assert await world.run(entry) is None
    world.at(at(2, 20))
    await world.run(entry)

    assert world.jobs() == []
    (condition,) = world.status()["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "CalendarNotFound")
    assert condition["message"] == (
        f"spec.calendars[0]: ScheduleCalendar 'maintenance' not found in namespace {NAMESPACE}"
    )
    assert world.status().get("nextRunAt") is None
    assert [e["reason"] for e in world.gateway.events] == ["CalendarNotFound"]


async def test_an_excluded_time_is_a_skipped_row_naming_the_calendar(world: World) -> None:
    world.reconciler.calendars.upsert(
        calendar(windows=[{"schedule": "20 2 * * *", "duration": "5m"}])
    )
    entry = world.trigger(schedule="*/10 * * * *", calendars=["maintenance"])
    world.at(at(2, 10))
    await world.run(entry)
    world.at(at(2, 20))

    due = await world.run(entry)

    assert world.job_times() == ["2026-11-26T02:10:00Z"]
    assert world.status()["cursor"] == "2026-11-26T02:20:00Z"
    assert world.status()["nextRunAt"] == "2026-11-26T02:30:00Z"
    assert due == at(2, 30)
    skipped = [row for row in world.ledger.written() if row[1] is LedgerStatus.SKIPPED]
    assert skipped == [(world.key(at(2, 20)), LedgerStatus.SKIPPED, "Excluded")]
    (record,) = [r for r in world.ledger.sink.runs if r.status is LedgerStatus.SKIPPED]
    assert record.message == "excluded by ScheduleCalendar maintenance"


async def test_a_calendar_event_marks_every_referencing_trigger_dirty_and_only_those(
    world: World,
) -> None:
    scheduler = scheduler_of(world)
    using = world.gateway.add_trigger(
        {"jobTemplate": {"spec": {}}, "schedule": "@daily", "calendars": ["maintenance"]},
        name="using",
        uid="using",
        created=at(1),
    )
    other = world.gateway.add_trigger(
        {"jobTemplate": {"spec": {}}, "schedule": "@daily"},
        name="other",
        uid="other",
        created=at(1),
    )
    for body in (using, other):
        scheduler.on_trigger_event("ADDED", body)
    scheduler._dirty.clear()

    scheduler.on_calendar_event("ADDED", calendar(dates=["2026-11-26"]))

    assert list(scheduler._dirty) == ["using"]
    assert world.reconciler.calendars.get(NAMESPACE, "maintenance") is not None
    scheduler._dirty.clear()
    scheduler.on_calendar_event("DELETED", calendar())
    assert list(scheduler._dirty) == ["using"]
    assert world.reconciler.calendars.get(NAMESPACE, "maintenance") is None
    # A trigger that stops listing the calendar, or is deleted, is no longer its user.
    scheduler.on_trigger_event("DELETED", using)
    assert world.reconciler.calendars.users(NAMESPACE, "maintenance") == []


async def test_a_calendar_edit_moves_the_next_run_and_never_fires_the_past(world: World) -> None:
    store = world.reconciler.calendars
    store.upsert(calendar(windows=[{"schedule": "0 2 * * *", "duration": "1h"}]))
    entry = world.trigger(schedule="*/10 * * * *", calendars=["maintenance"])
    world.at(at(2, 5))
    await world.run(entry)
    assert world.status()["nextRunAt"] == "2026-11-26T03:00:00Z"

    store.upsert(calendar(version=2, dates=["2026-11-27"]))
    world.at(at(2, 6))
    await world.run(entry)

    assert world.status()["nextRunAt"] == "2026-11-26T02:10:00Z"
    assert world.status()["specEpoch"] == "2026-11-26T02:06:00Z", "a calendar edit is an edit"
    assert world.jobs() == [], "the edit started nothing"


def test_the_store_compiles_a_calendar_once_for_many_triggers() -> None:
    from tests.unit.schedule.specs import make_spec

    store = CalendarStore()
    store.upsert(calendar(dates=["2026-12-25"]))
    spec = make_spec(calendars=["maintenance"])
    assert store.resolve(NAMESPACE, spec) is store.resolve(NAMESPACE, spec)
    store.upsert(calendar(version=2, dates=["2026-12-26"]))
    assert store.resolve(NAMESPACE, spec).digest != ""


async def test_status_remembers_an_excluded_time_so_a_lost_row_is_rebuilt(world: World) -> None:
    world.reconciler.calendars.upsert(calendar(dates=["2026-11-26"]))
    entry = world.trigger(schedule="*/10 * * * *", calendars=["maintenance"])
    world.at(at(2, 10))

    await world.run(entry)

    remembered = world.status()["notStarted"]
    assert remembered == [
        {
            "scheduledFor": "2026-11-26T02:10:00Z",
            "reason": "Excluded",
            "kind": "scheduled",
            "excludedBy": "ScheduleCalendar maintenance",
        }
    ]
    fresh = world.cache.upsert_trigger(world.gateway.triggers[(NAMESPACE, "nightly")])
    (record,) = trigger_evidence(fresh, status_of(fresh.body))
    assert (record.status, record.reason, record.message) == (
        LedgerStatus.SKIPPED,
        "Excluded",
        "excluded by ScheduleCalendar maintenance",
    )
