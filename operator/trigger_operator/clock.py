"""The one place that reads the wall clock.

Everything else takes time as an argument (`now`) or is handed a `Clock`, so that
tests can drive time instead of waiting for it. Instants are always timezone-aware UTC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    """A source of the current instant and of monotonic sleeps."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""
        ...

    async def wait_any(self, *events: asyncio.Event, within: float) -> None:
        """Return once one of `events` is set or `within` seconds of this clock have passed."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait_any(self, *events: asyncio.Event, within: float) -> None:
        await _first_of([event.wait() for event in events], within=within)


class FakeClock:
    """A clock that only moves when told to; sleeps return once time has been advanced."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._mono = 0.0
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        self._changed.set()

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + seconds
        while self._mono < deadline:
            self._changed.clear()
            await self._changed.wait()

    async def wait_any(self, *events: asyncio.Event, within: float) -> None:
        await _first_of([event.wait() for event in events] + [self.sleep(within)], within=None)


async def _first_of(waits: list[Coroutine[Any, Any, Any]], *, within: float | None) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
