"""Noticing edits: the fingerprint, and the epoch an edit or a resume sets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.schedule.specs import make_spec
from trigger_operator.models.status import TriggerStatus
from trigger_operator.schedule.progress import Progress, progress_from_status, schedule_fingerprint

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CURSOR = datetime(2026, 6, 1, 11, tzinfo=UTC)
BASE: dict[str, Any] = {"schedule": "0 * * * *", "timeZone": "UTC"}


@pytest.mark.parametrize(
    "change",
    [
        {"schedule": "30 * * * *"},
        {"schedule": None, "runAt": "2026-12-01T09:00:00Z"},
        {"timeZone": "Europe/Berlin"},
        {"daylightSaving": {"skippedTimes": "Skip"}},
        {"daylightSaving": {"repeatedTimes": "Twice"}},
        {"suspend": True},
    ],
)
def test_the_fingerprint_changes_with_every_field_that_decides_the_times(
    change: dict[str, Any],
) -> None:
    assert schedule_fingerprint(make_spec(**{**BASE, **change})) != schedule_fingerprint(
        make_spec(**BASE)
    )


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"report": "sales"}},
        {"jitterSeconds": 30},
        {"concurrencyPolicy": "Forbid"},
        {"catchUp": "All"},
        {"startingDeadlineSeconds": 60},
        {"successfulRunsHistoryLimit": 9},
        {"daylightSaving": {"skippedTimes": "RunAfterGap", "repeatedTimes": "Auto"}},
    ],
)
def test_the_fingerprint_ignores_fields_that_do_not_decide_the_times(
    change: dict[str, Any],
) -> None:
    assert schedule_fingerprint(make_spec(**{**BASE, **change})) == schedule_fingerprint(
        make_spec(**BASE)
    )


def test_the_fingerprint_is_stable_across_processes() -> None:
    # sha256 of {"daylightSaving":{"repeatedTimes":"Auto","skippedTimes":"RunAfterGap"},
    # "runAt":null,"schedule":"0 * * * *","suspend":false,"timeZone":"UTC"}, first 16 digits.
    assert schedule_fingerprint(make_spec(**BASE)) == "41942e62227b2f69"


def test_a_trigger_seen_for_the_first_time_is_not_an_edit() -> None:
    spec = make_spec(**BASE)
    progress = progress_from_status(spec, TriggerStatus(), created=CREATED, now=NOW)
    assert progress == Progress(created=CREATED, fingerprint=schedule_fingerprint(spec))


def test_an_unchanged_spec_keeps_its_progress() -> None:
    spec = make_spec(**BASE)
    status = TriggerStatus(
        cursor=CURSOR,
        schedule_hash=schedule_fingerprint(spec),
        spec_epoch=CREATED,
        completed=True,
    )
    progress = progress_from_status(spec, status, created=CREATED, now=NOW)
    assert progress == Progress(
        created=CREATED,
        cursor=CURSOR,
        epoch=CREATED,
        completed=True,
        fingerprint=schedule_fingerprint(spec),
    )


def test_an_edit_or_a_resume_is_dated_now_and_reopens_a_completed_trigger() -> None:
    suspended = make_spec(**BASE, suspend=True)
    resumed = make_spec(**BASE)
    status = TriggerStatus(
        cursor=CURSOR, schedule_hash=schedule_fingerprint(suspended), completed=True
    )
    progress = progress_from_status(resumed, status, created=CREATED, now=NOW)
    assert progress == Progress(
        created=CREATED,
        cursor=CURSOR,
        epoch=NOW,
        completed=False,
        fingerprint=schedule_fingerprint(resumed),
    )
