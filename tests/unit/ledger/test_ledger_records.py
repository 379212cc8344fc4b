"""Run keys, run identities and the forward-only status rule (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import product
from zoneinfo import ZoneInfo

import pytest

from trigger_operator.ledger.records import (
    FINAL_STATUSES,
    KEY_MAX_LENGTH,
    OUTRUN_BY_SUCCESS,
    STATUS_RANK,
    LedgerStatus,
    RunKind,
    RunRef,
    attempts_for,
    manual_run_key,
    moves_forward,
    next_status,
    scheduled_run_key,
)
from trigger_operator.models.instants import format_instant

UID = "0b7e4c1e-5a7f-4d7e-9a57-3f6f0f8b1c2d"
OTHER_UID = "9d1f2e3c-0000-4000-8000-000000000001"
AT = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)

P, R, S, F = LedgerStatus.PENDING, LedgerStatus.RUNNING, LedgerStatus.SUCCEEDED, LedgerStatus.FAILED
K, M, C = LedgerStatus.SKIPPED, LedgerStatus.MISSED, LedgerStatus.CANCELLED


def test_scheduled_key_names_the_trigger_uid_and_the_utc_instant() -> None:
    assert scheduled_run_key(UID, AT) == f"{UID}/2026-11-27T01:30:00Z"


def test_scheduled_key_is_the_same_for_one_instant_in_any_time_zone() -> None:
    berlin = AT.astimezone(ZoneInfo("Europe/Berlin"))
    plus_five = AT.astimezone(timezone(timedelta(hours=5)))
    assert scheduled_run_key(UID, berlin) == scheduled_run_key(UID, plus_five)
    assert scheduled_run_key(UID, berlin) == scheduled_run_key(UID, AT)


def test_scheduled_keys_differ_by_trigger_and_by_instant() -> None:
    keys = {
        scheduled_run_key(UID, AT),
        scheduled_run_key(OTHER_UID, AT),
        scheduled_run_key(UID, AT + timedelta(seconds=1)),
        scheduled_run_key(UID, AT + timedelta(microseconds=500)),
    }
    assert len(keys) == 4


def test_scheduled_key_keeps_sub_second_precision_only_when_present() -> None:
    assert format_instant(AT.replace(microsecond=250_000)) == "2026-11-27T01:30:00.25Z"
    assert format_instant(AT) == "2026-11-27T01:30:00Z"


def test_scheduled_key_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        scheduled_run_key(UID, datetime(2026, 11, 27, 1, 30))  # noqa: DTZ001


@pytest.mark.parametrize("uid", ["", "a/b", "x" * 65])
def test_keys_refuse_what_is_not_a_uid(uid: str) -> None:
    with pytest.raises(ValueError, match="uid"):
        scheduled_run_key(uid, AT)


def test_manual_key_is_named_from_the_run_now_value() -> None:
    assert manual_run_key(UID, "2026-11-26-deploy") == f"{UID}/run-now/2026-11-26-deploy"
    assert manual_run_key(UID, "a") == manual_run_key(UID, "a")
    assert manual_run_key(UID, "a") != manual_run_key(OTHER_UID, "a")


def test_manual_key_never_equals_a_scheduled_key() -> None:
    value = format_instant(AT)
    assert manual_run_key(UID, value) != scheduled_run_key(UID, AT)


@pytest.mark.parametrize("value", ["x" * 500, "line\nbreak"])
def test_manual_key_hashes_long_or_unprintable_values_into_a_bounded_key(value: str) -> None:
    key = manual_run_key(UID, value)
    assert "/run-now/sha256:" in key
    assert len(key) <= KEY_MAX_LENGTH
    assert key == manual_run_key(UID, value)
    assert key != manual_run_key(UID, value + "y")


def test_manual_key_refuses_an_empty_value() -> None:
    with pytest.raises(ValueError, match="empty"):
        manual_run_key(UID, "")


def test_run_ref_derives_its_key_and_keeps_scheduled_for_in_utc() -> None:
    berlin = AT.astimezone(ZoneInfo("Europe/Berlin"))
    ref = RunRef.scheduled(
        namespace="team-a", trigger_name="nightly", trigger_uid=UID, scheduled_for=berlin
    )
    assert ref.key == scheduled_run_key(UID, AT)
    assert ref.scheduled_for == AT and ref.scheduled_for.tzinfo is UTC
    assert ref.kind is RunKind.SCHEDULED


def test_run_ref_of_a_manual_run_is_keyed_by_its_value() -> None:
    ref = RunRef.manual(
        namespace="team-a", trigger_name="nightly", trigger_uid=UID,
        run_now_value="v1", requested_at=AT,
    )  # fmt: skip
    assert ref.kind is RunKind.MANUAL
    assert ref.key == manual_run_key(UID, "v1")


def test_run_ref_refuses_a_manual_kind_keyed_by_time() -> None:
    with pytest.raises(ValueError, match="run-now"):
        RunRef.scheduled(
            namespace="a", trigger_name="b", trigger_uid=UID, scheduled_for=AT,
            kind=RunKind.MANUAL,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (P, R, True),
        (P, S, True),
        (P, F, True),
        (P, C, True),
        (P, M, True),
        (R, S, True),
        (R, F, True),
        (R, C, True),
        (R, P, False),
        (S, R, False),
        (S, P, False),
        (S, F, False),
        (F, S, False),
        (C, F, False),
        # A success outruns a decision recorded before it: the run did run to the end.
        (C, S, True),
        (M, S, True),
        (K, S, True),
        (M, P, False),
        (K, R, False),
        (P, P, False),
        (S, S, False),
    ],
)
def test_status_moves_only_forward(current: LedgerStatus, new: LedgerStatus, allowed: bool) -> None:
    assert moves_forward(current, new) is allowed
    assert next_status(current, new) is (new if allowed else current)


def test_no_status_ever_moves_back_and_final_statuses_change_only_to_a_success() -> None:
    for current, new in product(LedgerStatus, LedgerStatus):
        after = next_status(current, new)
        assert STATUS_RANK[after] >= STATUS_RANK[current]
        if current in FINAL_STATUSES and after is not current:
            assert (current, after) in {(d, S) for d in OUTRUN_BY_SUCCESS}, (current, after)


def test_any_order_of_the_same_writes_ends_in_the_first_final_status() -> None:
    writes = [P, R, S, F]
    final = P
    for status in reversed(writes):
        final = next_status(final, status)
    assert final is F  # reversed order: failed arrived first among the final ones
    final = P
    for status in writes:
        final = next_status(final, status)
    assert final is S


@pytest.mark.parametrize(
    ("status", "failed", "attempts"),
    [(R, 0, 1), (S, 0, 1), (S, 2, 3), (F, 4, 4), (P, 0, 0), (C, 1, 1)],
)
def test_attempts_count_failed_pods_and_the_current_one(
    status: LedgerStatus, failed: int, attempts: int
) -> None:
    assert attempts_for(status, failed_pods=failed) == attempts
