"""Kopf starts only once the API server's discovery lists every resource it watches.

Kopf resolves its resources once, at start; started against an API server that is still
coming up, it would never watch triggers, Jobs or the Lease (seen in the fault-injection
suite: a replica restarted during a kube-apiserver restart never saw a new trigger).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from trigger_operator.clock import FakeClock
from trigger_operator.handlers.app import WATCHED_RESOURCES, _ready_to_watch, wait_until_served
from trigger_operator.kube.gateway import ApiUnavailable

START = datetime(2026, 12, 1, tzinfo=UTC)


class Discovery:
    """An API server whose discovery answers fully only from the `ready_after`-th round."""

    def __init__(self, *, ready_after: int, fail_first: bool = False) -> None:
        self.ready_after = ready_after
        self.fail_first = fail_first
        self.calls: list[tuple[str, str]] = []

    async def served_resources(self, group: str, version: str) -> set[str]:
        self.calls.append((group, version))
        rounds = sum(1 for call in self.calls if call == (group, version))
        if self.fail_first and rounds == 1:
            raise ApiUnavailable("API server unreachable: connection refused")
        if rounds < self.ready_after and group != "batch":
            return set()  # a partial answer: only some groups are served yet
        return {plural for g, v, plural in WATCHED_RESOURCES if (g, v) == (group, version)}


async def _run_until_done(task: asyncio.Task[None], clock: FakeClock) -> None:
    for _ in range(100):
        await asyncio.sleep(0)
        if task.done():
            return
        clock.advance(1)
    raise AssertionError("still waiting")


async def test_it_returns_at_once_when_everything_is_served() -> None:
    discovery = Discovery(ready_after=1)
    await asyncio.wait_for(wait_until_served(discovery, FakeClock(START)), timeout=1)
    assert len(discovery.calls) == len(WATCHED_RESOURCES)


async def test_a_partial_discovery_is_waited_out_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trigger_operator")
    discovery = Discovery(ready_after=4, fail_first=True)
    clock = FakeClock(START)
    task = asyncio.ensure_future(wait_until_served(discovery, clock))

    await _run_until_done(task, clock)

    task.result()
    waits = [r for r in caplog.records if "waiting for the API server" in r.getMessage()]
    assert len(waits) == 1
    assert any("serves every watched resource" in r.getMessage() for r in caplog.records)


async def test_it_never_returns_while_a_watched_resource_is_missing() -> None:
    discovery = Discovery(ready_after=10**6)
    clock = FakeClock(START)
    task = asyncio.ensure_future(wait_until_served(discovery, clock))
    for _ in range(50):
        await asyncio.sleep(0)
        clock.advance(5)
    assert not task.done()
    task.cancel()


async def test_a_stop_ends_the_wait() -> None:
    stop = asyncio.Event()
    clock = FakeClock(START)
    task = asyncio.ensure_future(wait_until_served(Discovery(ready_after=10**6), clock, stop=stop))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, timeout=1)


class _Listed:
    """The part of the scheduler `_ready_to_watch` reads: whether its first listing is in."""

    def __init__(self) -> None:
        self.listed = asyncio.Event()


async def test_kopf_starts_watching_only_after_the_schedulers_first_listing() -> None:
    # kopf's own listing then finds every version held and skips its per-object work.
    clock = FakeClock(START)
    scheduler = _Listed()
    ready = asyncio.create_task(
        _ready_to_watch(scheduler, Discovery(ready_after=1), clock, stop=asyncio.Event())  # type: ignore[arg-type]
    )
    for _ in range(20):
        await asyncio.sleep(0)
        clock.advance(1)
    assert not ready.done()
    scheduler.listed.set()
    await _run_until_done(ready, clock)


async def test_a_stop_before_the_first_listing_ends_the_wait() -> None:
    clock = FakeClock(START)
    stop = asyncio.Event()
    ready = asyncio.create_task(
        _ready_to_watch(_Listed(), Discovery(ready_after=1), clock, stop=stop)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    stop.set()
    await _run_until_done(ready, clock)
