"""Which API call goes out next: the most urgent, within a connection limit and a QPS budget.

The operator's calls are not equal. During a burst of due times, a Job create is what
makes a run on time; the status patch that follows it only records that it happened
(exactly-once rests on the Job name, not on the patch), and an Event or a dry run can
wait longer still. So every call takes a class (`Urgency`), and while calls wait, the
most urgent class goes first, in arrival order within a class.

The budget is a token bucket (`qps` tokens a second, up to `burst` saved): the operator
never sends faster than that, however many triggers fall due, so that it does not
starve the API server's other clients. `qps` 0 means no budget, only the connection limit.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from enum import IntEnum


class Urgency(IntEnum):
    """The classes of calls, most urgent first."""

    DISPATCH = 0
    """Job creates, deletes (Replace) and releases: what makes or stops a run."""
    READ = 1
    """Reads and listings a pass decides on."""
    RECORD = 2
    """Status patches: what a pass decided, after the fact."""
    BACKGROUND = 3
    """Dry runs of new templates, Events, access reviews."""


class Admission:
    """Admits calls in order of urgency, at most `connections` at once, at most `qps`/s."""

    def __init__(self, *, connections: int, qps: float = 0.0, burst: int = 0) -> None:
        if connections < 1:
            raise ValueError("connections must be >= 1")
        self._free = connections
        self._qps = max(0.0, qps)
        self._burst = max(1, burst or int(self._qps) or 1)
        self._tokens = float(self._burst)
        self._refilled = time.monotonic()
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def acquire(self, urgency: Urgency) -> None:
        """Wait until this call may go out; then it holds one connection until `release`."""
        if not self._waiting and self._free > 0 and self._take():
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (int(urgency), next(self._seq), future))
        self._admit()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # admitted just as it was cancelled: pass the turn on
            raise

    def release(self) -> None:
        self._free += 1
        self._admit()

    def _admit(self) -> None:
        while self._waiting and self._free > 0:
            if self._waiting[0][2].done():  # cancelled while waiting
                heapq.heappop(self._waiting)
                continue
            if not self._take():
                self._wake_for_token()
                return
            _, _, future = heapq.heappop(self._waiting)
            self._free -= 1
            future.set_result(None)

    def _take(self) -> bool:
        if self._qps == 0:
            return True
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._qps)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _wake_for_token(self) -> None:
        if self._timer is not None:
            return
        delay = (1 - self._tokens) / self._qps

        def wake() -> None:
            self._timer = None
            self._admit()

        self._timer = asyncio.get_running_loop().call_later(delay, wake)
