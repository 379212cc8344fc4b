"""The operator's event loop chains our stop-signal handler with kopf's, for any number of signals.

kopf answers SIGINT and SIGTERM by setting the result of one future, which can be done
once; a second signal during the graceful stop (a person pressing Ctrl-C twice, or
`docker stop` followed by `docker kill --signal TERM`) must neither raise from kopf's
handler nor skip ours. Real signals, sent to this process, on a real `OperatorLoop`.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from trigger_operator.handlers.app import OperatorLoop


@pytest.fixture
def loop() -> Iterator[OperatorLoop]:
    loop = OperatorLoop()
    try:
        yield loop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        loop.close()


def test_a_second_stop_signal_reaches_our_handler_and_raises_nothing_from_kopfs(
    loop: OperatorLoop,
) -> None:
    ours: list[signal.Signals] = []
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    loop.on_stop_signal = ours.append

    async def two_signals_during_the_stop() -> object:
        # As kopf does when it starts: both signals set one future.
        kopf_flag: asyncio.Future[signal.Signals] = loop.create_future()
        loop.add_signal_handler(signal.SIGINT, kopf_flag.set_result, signal.SIGINT)
        loop.add_signal_handler(signal.SIGTERM, kopf_flag.set_result, signal.SIGTERM)
        for signum in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), signum)
            for _ in range(20):  # the handler runs on a later turn of the loop
                await asyncio.sleep(0.005)
        return kopf_flag.result()

    told_kopf = loop.run_until_complete(two_signals_during_the_stop())

    assert told_kopf == signal.SIGTERM
    assert ours == [signal.SIGTERM, signal.SIGTERM, signal.SIGINT]
    assert errors == [], [context.get("exception") for context in errors]
