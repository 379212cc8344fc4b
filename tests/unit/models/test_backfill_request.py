"""The backfill annotation's form (no cluster)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from trigger_operator.models.requests import BackfillRequest, RequestError, backfill_request

T1 = datetime(2026, 11, 20, tzinfo=UTC)
T2 = datetime(2026, 11, 25, tzinfo=UTC)


def test_a_request_reads_back_what_the_cli_writes() -> None:
    request = BackfillRequest(id="bf-1", start=T1, end=T2, max_runs=5, concurrency=2)

    assert backfill_request(request.annotation()) == request


def test_defaults_are_a_hundred_runs_one_at_a_time() -> None:
    text = json.dumps({"id": "x", "from": "2026-11-20T00:00:00Z", "to": "2026-11-25T00:00:00Z"})

    request = backfill_request(text)

    assert (request.max_runs, request.concurrency) == (100, 1)


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"from": "2026-11-20T00:00:00Z", "to": "2026-11-25T00:00:00Z"}, "id must be"),
        ({"id": "x", "from": "yesterday", "to": "2026-11-25T00:00:00Z"}, "RFC 3339"),
        ({"id": "x", "from": "2026-11-25T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "before"),
        (
            {"id": "x", "from": "2026-11-20T00:00:00Z", "to": "2026-11-25T00:00:00Z", "maxRuns": 0},
            "maxRuns",
        ),
        (
            {
                "id": "x",
                "from": "2026-11-20T00:00:00Z",
                "to": "2026-11-25T00:00:00Z",
                "concurrency": 11,
            },
            "concurrency",
        ),
    ],
)
def test_what_cannot_be_carried_out_is_refused_with_the_reason(
    document: dict[str, object], why: str
) -> None:
    with pytest.raises(RequestError, match=why):
        backfill_request(json.dumps(document))


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(RequestError, match="not JSON"):
        backfill_request("{")
