"""Which call goes out next: urgency first, then arrival; never more than the budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from trigger_operator.kube.admission import Admission, Urgency


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_waiting_calls_go_out_most_urgent_first_then_in_arrival_order() -> None:
    admission = Admission(connections=1)
    await admission.acquire(Urgency.READ)  # the only connection is busy
    order: list[str] = []

    async def call(name: str, urgency: Urgency) -> None:
        await admission.acquire(urgency)
        order.append(name)
        admission.release()

    tasks = [
        asyncio.create_task(call(name, urgency))
        for name, urgency in [
            ("patch-1", Urgency.RECORD),
            ("event", Urgency.BACKGROUND),
            ("create-1", Urgency.DISPATCH),
            ("patch-2", Urgency.RECORD),
            ("create-2", Urgency.DISPATCH),
        ]
    ]
    await _settle()
    assert order == []
    admission.release()
    await asyncio.gather(*tasks)

    assert order == ["create-1", "create-2", "patch-1", "patch-2", "event"]


async def test_no_more_calls_at_once_than_connections() -> None:
    admission = Admission(connections=3)
    in_flight = most = 0

    async def call() -> None:
        nonlocal in_flight, most
        await admission.acquire(Urgency.DISPATCH)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        admission.release()

    await asyncio.gather(*(call() for _ in range(30)))

    assert most == 3


async def test_the_rate_stays_within_the_budget_after_the_burst() -> None:
    admission = Admission(connections=50, qps=200, burst=10)
    started = time.monotonic()

    async def call() -> None:
        await admission.acquire(Urgency.DISPATCH)
        admission.release()

    await asyncio.gather(*(call() for _ in range(50)))

    # 10 at once from the burst, then 40 at 200/s: at least 0.2 s.
    assert time.monotonic() - started >= 0.19


async def test_a_call_cancelled_while_waiting_gives_its_turn_away() -> None:
    admission = Admission(connections=1)
    await admission.acquire(Urgency.READ)
    cancelled = asyncio.create_task(admission.acquire(Urgency.DISPATCH))
    later = asyncio.create_task(admission.acquire(Urgency.RECORD))
    await _settle()
    cancelled.cancel()
    await _settle()
    admission.release()

    await asyncio.wait_for(later, 1)
    assert admission.waiting == 0
    with pytest.raises(asyncio.CancelledError):
        await cancelled
