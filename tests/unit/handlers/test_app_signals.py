"""The operator's event loop holds the stop signals from the moment our handler is set.

kopf answers SIGINT and SIGTERM by setting the result of one future, which can be done
once; a second signal during the graceful stop (a person pressing Ctrl-C twice, or
`docker stop` followed by `docker kill --signal TERM`) must neither raise from kopf's
handler nor skip ours. kopf also removes its handlers when it stops, and asyncio's
removal restores the default action: a signal repeated after that, while the ledger is
flushed, must not kill the process. Real signals, sent to a real process, on a real
`OperatorLoop`; the cases that could kill the process run in a child interpreter.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from trigger_operator.handlers.app import OperatorLoop


@pytest.fixture
def loop() -> Iterator[OperatorLoop]:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    loop = OperatorLoop()
    try:
        yield loop
    finally:
        loop.close()
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_second_stop_signal_reaches_our_handler_and_raises_nothing_from_kopfs(
    loop: OperatorLoop,
) -> None:
    ours: list[signal.Signals] = []
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    loop.hold_stop_signals(ours.append)

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


# A child that holds the signals, lets "kopf" install and remove its handlers, signals
# itself after the removal and again after the loop is closed, and says what it saw.
_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal
    from trigger_operator.handlers.app import OperatorLoop

    loop = OperatorLoop()
    ours = []
    kopf = []

    async def main():
        loop.hold_stop_signals(ours.append)
        loop.add_signal_handler(signal.SIGTERM, kopf.append, "term")
        loop.add_signal_handler(signal.SIGINT, kopf.append, "int")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        assert loop.remove_signal_handler(signal.SIGTERM)
        assert loop.remove_signal_handler(signal.SIGINT)
        for signum in (signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), signum)
            await asyncio.sleep(0.1)

    loop.run_until_complete(main())
    loop.close()
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    print("ours", [s.name for s in ours], "kopf", kopf, "alive")
    """
)


def test_a_stop_signal_after_kopf_removed_its_handlers_or_the_loop_closed_never_kills() -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60
    )

    assert child.returncode == 0, (child.returncode, child.stderr)
    assert child.stdout.split() == [
        "ours",
        "['SIGTERM',",
        "'SIGTERM',",
        "'SIGINT']",
        "kopf",
        "['term']",
        "alive",
    ]
