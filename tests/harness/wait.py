"""Polling with deadlines: tests wait for a condition, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """The condition did not hold before the deadline."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call `probe` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise Timeout(f"after {timeout:.1f} s: {text} (last: {last!r})")
        time.sleep(interval)
