"""Stable jitter: derived from the uid, the same everywhere, within [0, jitterSeconds)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from trigger_operator.schedule.jitter import due_at, jitter_for

UID = "6f1c2a4e-3b7d-4f0a-9c8e-1d2b3a4c5e6f"


def test_jitter_is_a_fixed_function_of_the_uid() -> None:
    # The derivation is part of the contract: changing it would move every trigger's slot.
    expected = int.from_bytes(hashlib.sha256(UID.encode()).digest()[:8], "big") % 600
    assert jitter_for(UID, 600) == timedelta(seconds=expected)
    assert jitter_for(UID, 600) == timedelta(seconds=230)


def test_no_jitter_when_jitter_seconds_is_zero() -> None:
    assert jitter_for(UID, 0) == timedelta(0)


@given(uid=st.text(min_size=1, max_size=64), limit=st.integers(1, 86_400))
def test_jitter_is_whole_seconds_in_range(uid: str, limit: int) -> None:
    jitter = jitter_for(uid, limit)
    assert timedelta(0) <= jitter < timedelta(seconds=limit)
    assert jitter.microseconds == 0


def test_triggers_sharing_a_schedule_are_spread_out() -> None:
    delays = {jitter_for(f"uid-{n}", 3600) for n in range(100)}
    assert len(delays) > 90


def test_a_run_is_due_its_jitter_after_its_scheduled_time() -> None:
    scheduled = datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert due_at(scheduled, timedelta(seconds=42)) == datetime(2026, 1, 1, 9, 0, 42, tzinfo=UTC)
