"""The fence a write checks as it leaves: the Lease, and the term its pass began in."""

from __future__ import annotations

import asyncio

from trigger_operator.scheduler.gate import begin_pass, fence_for


class Leader:
    """The elector's two answers the fence reads, set by hand."""

    def __init__(self) -> None:
        self.leading = True
        self.term = 1

    def holds(self) -> bool:
        return self.leading

    def may_write(self) -> bool:
        return self.leading


async def test_a_write_decided_in_one_term_does_not_leave_in_the_next() -> None:
    # A pass decides a write in term 1 and queues it; the process pauses, loses the
    # Lease and takes it back (term 2) before the write leaves: it must not leave.
    leader = Leader()
    fence = fence_for(leader)
    decided = asyncio.Event()
    resumed = asyncio.Event()
    answers: list[bool] = []

    async def a_pass() -> None:
        begin_pass(leader)  # type: ignore[arg-type]
        answers.append(fence())  # at once: it may leave
        decided.set()
        await resumed.wait()  # queued across the pause
        answers.append(fence())

    task = asyncio.create_task(a_pass())
    await decided.wait()
    leader.leading = False
    leader.leading, leader.term = True, 2  # taken back: a new term
    resumed.set()
    await task
    assert answers == [True, False]


async def test_outside_a_pass_the_fence_is_the_lease() -> None:
    leader = Leader()
    fence = fence_for(leader)
    assert fence()
    leader.term = 5
    assert fence()  # no pass term to compare with: the Lease alone decides
    leader.leading = False
    assert not fence()


async def test_a_pass_of_the_current_term_may_write_until_the_lease_goes() -> None:
    leader = Leader()
    fence = fence_for(leader)

    async def a_pass() -> list[bool]:
        begin_pass(leader)  # type: ignore[arg-type]
        first = fence()
        leader.leading = False
        return [first, fence()]

    assert await asyncio.create_task(a_pass()) == [True, False]
