"""kopf's watch streams are decoded by orjson once the operator swaps it in."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import kopf._cogs.clients.api
import orjson
import pytest

from trigger_operator.handlers.watch import LIST_CHUNK, decode_watch_streams_with_orjson

kopf_api: Any = kopf._cogs.clients.api  # its `json` is an import, not an export


@pytest.fixture
def restore_kopf_json() -> Any:
    saved = kopf_api.json
    yield
    kopf_api.json = saved


class _Content:
    """The part of aiohttp's StreamReader that kopf's `iter_jsonlines` reads."""

    def __init__(self, data: bytes) -> None:
        self._chunks = [data[i : i + 7] for i in range(0, len(data), 7)]

    async def iter_chunked(self, size: int) -> Any:
        for chunk in self._chunks:
            yield chunk


def test_kopf_still_decodes_its_watch_lines_with_a_module_named_json() -> None:
    # The swap rests on kopf's watch stream calling its module's `json.loads`; a kopf
    # release that decodes elsewhere must fail here, loudly, not quietly decode with the
    # slow one.
    assert hasattr(kopf_api, "json") and hasattr(kopf_api.json, "loads")
    assert "json.loads(" in inspect.getsource(kopf_api.stream)


@pytest.mark.usefixtures("restore_kopf_json")
def test_the_swap_makes_kopf_decode_with_orjson_and_keeps_the_rest_of_json() -> None:
    assert decode_watch_streams_with_orjson() is True
    assert kopf_api.json.loads is orjson.loads
    assert kopf_api.json.dumps is json.dumps
    assert decode_watch_streams_with_orjson() is True  # a second call changes nothing
    assert kopf_api.json.loads is orjson.loads


@pytest.mark.usefixtures("restore_kopf_json")
def test_events_decoded_after_the_swap_are_the_events_json_would_give() -> None:
    events = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "uid": "1"}, "n": 1.5}},
        {"type": "MODIFIED", "object": {"metadata": {"name": "ü", "uid": "2"}, "x": None}},
    ]
    stream = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    decode_watch_streams_with_orjson()

    async def decode() -> list[Any]:
        lines = [line async for line in kopf_api.iter_jsonlines(_Content(stream))]
        return [kopf_api.json.loads(line.decode("utf-8")) for line in lines]

    assert asyncio.run(decode()) == events


@pytest.mark.usefixtures("restore_kopf_json")
def test_without_the_attribute_nothing_is_swapped() -> None:
    del kopf_api.json
    assert decode_watch_streams_with_orjson() is False
    assert not hasattr(kopf_api, "json")


def test_the_listing_is_by_pages() -> None:
    assert 100 <= LIST_CHUNK <= 1000
