"""The request annotations' form: a run-now's own payload (no cluster)."""

from __future__ import annotations

import json

import pytest

from trigger_operator.models.requests import (
    ANNOTATION_RUN_NOW_PAYLOAD,
    RequestError,
    RunNowPayload,
    run_now_payload,
    run_now_payload_annotation,
)


def test_a_payload_annotation_names_its_value_and_reads_back() -> None:
    text = run_now_payload_annotation("deploy-42", {"table": "orders", "day": "2026-11-25"})

    assert json.loads(text) == {
        "value": "deploy-42",
        "payload": {"day": "2026-11-25", "table": "orders"},
    }
    assert run_now_payload({ANNOTATION_RUN_NOW_PAYLOAD: text}, "deploy-42") == RunNowPayload(
        value="deploy-42", payload={"day": "2026-11-25", "table": "orders"}
    )


def test_a_payload_left_from_another_value_is_not_handed_to_this_one() -> None:
    text = run_now_payload_annotation("deploy-41", [1, 2])

    assert run_now_payload({ANNOTATION_RUN_NOW_PAYLOAD: text}, "deploy-42") is None
    assert run_now_payload({}, "deploy-42") is None


def test_json_null_is_a_payload_of_its_own_no_payload_at_all() -> None:
    text = run_now_payload_annotation("v", None)

    assert run_now_payload({ANNOTATION_RUN_NOW_PAYLOAD: text}, "v") == RunNowPayload("v", None)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("x" * 40_000, "more than 32768"),
        (json.loads("[" * 40 + "]" * 40), "levels of nesting"),
    ],
)
def test_payloads_beyond_the_bounds_of_spec_payload_are_refused(payload: object, why: str) -> None:
    with pytest.raises(RequestError, match=why):
        run_now_payload_annotation("v", payload)  # type: ignore[arg-type]
    text = json.dumps({"value": "v", "payload": payload})
    with pytest.raises(RequestError, match=why):
        run_now_payload({ANNOTATION_RUN_NOW_PAYLOAD: text}, "v")


@pytest.mark.parametrize("text", ["{not json", '"just a string"', '{"payload": 1}'])
def test_an_unreadable_annotation_is_refused_rather_than_ignored(text: str) -> None:
    with pytest.raises(RequestError, match=r"run-now-payload\]"):
        run_now_payload({ANNOTATION_RUN_NOW_PAYLOAD: text}, "v")
