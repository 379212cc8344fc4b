"""The scheduler's one question to leadership: may I write now, and as whom?

The scheduler only creates Jobs and patches status while `may_write()` is true. The
Lease elector answers it (fenced by its local deadline), for one replica as for many.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Protocol

from trigger_operator.jobs.builder import LeaderIdentity


class Gate(Protocol):
    """Whether this replica may dispatch, and the identity its writes carry."""

    def may_write(self) -> bool:
        """True while this replica leads and its lease cannot have expired."""
        ...

    @property
    def writer(self) -> LeaderIdentity:
        """Identity and revision recorded on every Job this replica creates."""
        ...

    async def wait_until_leader(self) -> None:
        """Return once `may_write()` is true."""
        ...

    def changed(self) -> asyncio.Event:
        """Set whenever leadership changes, so a sleeping scheduler wakes up."""
        ...

    @property
    def term(self) -> int:
        """How many times this replica began to lead: it changes with every take of the
        Lease, even one that follows a loss too quickly for the scheduler to see."""
        ...


class NotLeading(Exception):
    """The gate closed mid-pass: stop writing at once (fencing)."""


# The leadership term a pass began in (each pass is a task of its own, with its own value).
_PASS_TERM: contextvars.ContextVar[int | None] = contextvars.ContextVar("pass_term", default=None)


def begin_pass(gate: Gate) -> None:
    """Tie the current task's writes to the term it leads in now (see `require_leader`)."""
    _PASS_TERM.set(gate.term)


def pass_term() -> int | None:
    """The term the current pass began in (None outside a pass)."""
    return _PASS_TERM.get()


def require_leader(gate: Gate) -> None:
    """Raise `NotLeading` unless `gate` lets this replica write now, and, in a pass, in the
    term the pass began in: a pass that began before a loss (a process paused mid-pass)
    decided from what the cache showed then, and must not write in the next term."""
    if not gate.may_write() or not _in_pass_term(gate.term):
        raise NotLeading


def _in_pass_term(term: int) -> bool:
    """Whether `term` is the one the current pass began in (True outside a pass)."""
    began = _PASS_TERM.get()
    return began is None or began == term


class Holder(Protocol):
    """What the fence asks leadership, from any thread: the Lease held, and which term."""

    def holds(self) -> bool: ...

    @property
    def term(self) -> int: ...


def fence_for(leader: Holder) -> Callable[[], bool]:
    """The check a write makes as it leaves (the gateway's `fence`): the Lease still held
    and, for a write of a pass, in the term the pass began in.

    `require_leader` checks when the pass decides; a write then waits for its turn in the
    client (the API budget, a free connection) and a process paused meanwhile may have
    lost the Lease and taken it back by the time the write leaves. Read in the writing
    task, so the pass's term is the one its context carries.
    """

    def fence() -> bool:
        return leader.holds() and _in_pass_term(leader.term)

    return fence
