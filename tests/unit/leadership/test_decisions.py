"""The pure Lease rules: who may take the Lease, and until when a leader may write."""

from __future__ import annotations

import pytest

from trigger_operator.leadership.decisions import (
    Holder,
    Verdict,
    safety_margin,
    still_ours,
    verdict,
    write_deadline,
)

ME = "pod-b"
MY_REVISION = 3


def _held(identity: str | None, revision: int, duration: float = 15.0) -> Holder:
    return Holder(identity=identity, revision=revision, duration_seconds=duration)


@pytest.mark.parametrize(
    ("holder", "unchanged_for", "expected"),
    [
        pytest.param(None, 0.0, Verdict.TAKE_FREE, id="no-lease-yet"),
        pytest.param(_held(None, 5), 0.0, Verdict.TAKE_FREE, id="released-by-newer-revision"),
        pytest.param(_held("", 1), 0.0, Verdict.TAKE_FREE, id="empty-holder"),
        pytest.param(_held("pod-a", 2), 0.0, Verdict.SUPERSEDE, id="older-revision-just-renewed"),
        pytest.param(_held("pod-a", 0), 0.0, Verdict.SUPERSEDE, id="unversioned-holder"),
        pytest.param(_held("pod-a", 3), 0.0, Verdict.WAIT, id="same-revision-renewed"),
        pytest.param(_held("pod-a", 3), 15.0, Verdict.WAIT, id="same-revision-at-duration"),
        pytest.param(_held("pod-a", 3), 15.1, Verdict.TAKE_EXPIRED, id="same-revision-expired"),
        pytest.param(_held("pod-a", 4), 14.9, Verdict.WAIT, id="newer-revision-renewed"),
        pytest.param(_held("pod-a", 4), 15.1, Verdict.TAKE_EXPIRED, id="newer-revision-expired"),
        pytest.param(_held(ME, 3), 0.0, Verdict.RECLAIM, id="our-own-record"),
        pytest.param(_held(ME, 9), 0.0, Verdict.RECLAIM, id="our-own-record-any-revision"),
    ],
)
def test_verdict_for_a_lease_this_replica_does_not_hold(
    holder: Holder | None, unchanged_for: float, expected: Verdict
) -> None:
    decided = verdict(
        holder, my_identity=ME, my_revision=MY_REVISION, seen_unchanged_for=unchanged_for
    )
    assert decided is expected


def test_expiry_follows_the_holders_duration_not_ours() -> None:
    short = _held("pod-a", 3, duration=6.0)
    assert verdict(short, my_identity=ME, my_revision=3, seen_unchanged_for=6.5) is (
        Verdict.TAKE_EXPIRED
    )
    long = _held("pod-a", 3, duration=60.0)
    assert verdict(long, my_identity=ME, my_revision=3, seen_unchanged_for=6.5) is Verdict.WAIT


@pytest.mark.parametrize("duration", [1.0, 2.0, 6.0, 15.0, 60.0, 137.0])
def test_write_deadline_falls_before_the_lease_could_expire(duration: float) -> None:
    # Another replica counts expiry from when it saw the renewal, which is never before
    # the renewal started: a deadline strictly before start + duration fences the leader.
    deadline = write_deadline(100.0, duration)
    assert deadline < 100.0 + duration
    assert deadline - 100.0 <= duration - 1.0


def test_safety_margin_is_a_fifth_of_the_duration_and_at_least_a_second() -> None:
    assert safety_margin(15.0) == pytest.approx(3.0)
    assert safety_margin(6.0) == pytest.approx(1.2)
    assert safety_margin(2.0) == pytest.approx(1.0)
    assert write_deadline(10.0, 15.0) == pytest.approx(22.0)


def test_a_lease_is_still_ours_only_while_it_names_us() -> None:
    assert still_ours(_held(ME, 3), my_identity=ME)
    assert not still_ours(_held("pod-c", 3), my_identity=ME)
    assert not still_ours(_held(None, 3), my_identity=ME)
    assert not still_ours(None, my_identity=ME)
