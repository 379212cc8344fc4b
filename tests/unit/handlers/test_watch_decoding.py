"""kopf's watch streams are decoded by orjson once the operator swaps it in."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import aiohttp
import kopf._cogs.clients.api
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import trigger_operator.handlers.watch as watch
from trigger_operator.handlers.watch import (
    LIST_CHUNK,
    decode_listings_with_orjson,
    decode_watch_streams_with_orjson,
)

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


@pytest.fixture
def restore_kopf_get() -> Any:
    saved = kopf_api.get
    yield
    kopf_api.get = saved


LISTING = {
    "kind": "ScheduledTriggerList",
    "metadata": {"resourceVersion": "42", "continue": ""},
    "items": [{"metadata": {"name": "ü-nightly", "uid": "1"}, "spec": {"n": 1.5, "x": None}}],
}


@pytest.mark.usefixtures("restore_kopf_get")
def test_kopf_listings_are_decoded_by_orjson_into_what_json_would_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kopf's own `get`, as its listing calls it, against a real HTTP server; only the
    # HTTP client's session is ours (kopf's `request` needs its login context).
    decoded: list[str] = []

    def counting(text: str) -> Any:
        decoded.append(text)
        return orjson.loads(text)

    monkeypatch.setattr(watch, "orjson", type("Orjson", (), {"loads": staticmethod(counting)}))

    async def listing(request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(LISTING).encode(), content_type="application/json")

    async def scenario() -> Any:
        app = web.Application()
        app.router.add_get("/apis/triggers.dev/v1alpha1/scheduledtriggers", listing)
        async with TestServer(app) as server, aiohttp.ClientSession() as session:

            async def request(*, method: str, url: str, **_: Any) -> aiohttp.ClientResponse:
                return await session.request(method, server.make_url(url))

            monkeypatch.setattr(kopf_api, "request", request)
            assert decode_listings_with_orjson() is True
            assert decode_listings_with_orjson() is True  # a second call changes nothing
            return await kopf_api.get(
                "/apis/triggers.dev/v1alpha1/scheduledtriggers", settings=None, logger=None
            )

    assert asyncio.run(scenario()) == LISTING
    assert len(decoded) == 1


@pytest.mark.usefixtures("restore_kopf_get")
def test_a_kopf_get_of_another_shape_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    async def get(url: str, *, settings: Any, logger: Any, stream: bool = False) -> Any:
        return None

    monkeypatch.setattr(kopf_api, "get", get)
    assert decode_listings_with_orjson() is False
    assert kopf_api.get is get


def test_kopf_get_still_has_the_shape_the_replacement_copies() -> None:
    # A kopf release that changes `get` must fail here, not lose its new behaviour.
    original = getattr(kopf_api.get, "__wrapped__", kopf_api.get)
    assert tuple(inspect.signature(original).parameters) == watch._KOPF_GET_PARAMETERS
    source = inspect.getsource(original)
    assert "await request(" in source and "response.json()" in source
