"""Pure rules of the scheduling Lease: who may take it, and until when a leader may write.

The Lease names its holder (`holderIdentity`, the pod) and, in the annotation
`triggers.dev/revision`, the Deployment revision the holder runs. Expiry is judged the
way client-go judges it: by the local monotonic clock since this replica last saw the
record change, never by comparing another machine's wall clock to ours.

- a free Lease (no holder) or an expired one is taken;
- a Lease held by a lower revision is taken at once: that is supersession, how a
  rollout hands scheduling to new code without waiting for expiry;
- a Lease held by the same or a higher revision is left alone while it is renewed;
- a Lease that still names this replica is reclaimed (a restart under the same pod name,
  or a leader whose renew came too late and that nobody replaced);
- a leader may write only until its local deadline: the start of its last successful
  renewal plus the lease duration minus a safety margin, so it stops before any other
  replica could consider the Lease expired (fencing).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What a replica that does not lead should do about the Lease."""

    TAKE_FREE = "free"
    TAKE_EXPIRED = "expired"
    RECLAIM = "reclaim"
    SUPERSEDE = "supersede"
    WAIT = "wait"


@dataclass(frozen=True)
class Holder:
    """The Lease as another replica left it."""

    identity: str | None
    revision: int
    duration_seconds: float


def verdict(
    holder: Holder | None,
    *,
    my_identity: str,
    my_revision: int,
    seen_unchanged_for: float,
) -> Verdict:
    """Decide about a Lease this replica does not hold.

    `seen_unchanged_for` is how long (monotonic seconds) this replica has watched the
    record without it changing; a record never watched before counts as just renewed.
    """
    if holder is None or not holder.identity:
        return Verdict.TAKE_FREE
    if holder.identity == my_identity:
        # Ours: from an earlier life of this pod, or a renew that came too late.
        return Verdict.RECLAIM
    if holder.revision < my_revision:
        return Verdict.SUPERSEDE
    if seen_unchanged_for > holder.duration_seconds:
        return Verdict.TAKE_EXPIRED
    return Verdict.WAIT


def safety_margin(duration_seconds: float) -> float:
    """How long before the Lease could expire a leader stops writing."""
    return max(1.0, duration_seconds * 0.2)


def write_deadline(renew_started: float, duration_seconds: float) -> float:
    """The monotonic instant until which a leader that renewed at `renew_started` may write."""
    return renew_started + duration_seconds - safety_margin(duration_seconds)


def still_ours(holder: Holder | None, *, my_identity: str) -> bool:
    """Whether a Lease read back by the leader still names it."""
    return holder is not None and holder.identity == my_identity
