"""The words for a change of the scheduler's leadership, shared by the elector and the ledger."""

from __future__ import annotations

from enum import StrEnum


class LeadershipEvent(StrEnum):
    """A change of the scheduler's leadership, from the point of view of `identity`.

    - acquired: `identity` took the lease (free, expired, or held by a lower revision;
      `other_identity` names the previous holder, if any);
    - superseded: `identity` lost the lease to a higher revision (`other_identity`);
    - lost: `identity` could not renew in time, or found another holder, and stopped;
    - released: `identity` gave the lease up, normally on shutdown.
    """

    ACQUIRED = "acquired"
    SUPERSEDED = "superseded"
    LOST = "lost"
    RELEASED = "released"
