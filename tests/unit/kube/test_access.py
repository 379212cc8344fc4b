"""Who may read /metrics: the verdicts, and how long an answer of the API server is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from trigger_operator.clock import FakeClock
from trigger_operator.kube.access import MetricsAccess, bearer_token
from trigger_operator.kube.gateway import ApiUnavailable

PROMETHEUS = "system:serviceaccount:monitoring:prometheus"


@dataclass
class Reviews:
    """The API server's answers: which tokens are whose, and which users may get /metrics."""

    users: dict[str, str]
    allowed: set[str]
    down: bool = False
    calls: list[str] = field(default_factory=list)

    async def review_token(self, token: str, *, audiences: list[str]) -> dict[str, Any]:
        self.calls.append("TokenReview")
        if self.down:
            raise ApiUnavailable("API server unreachable")
        if token not in self.users:
            return {"authenticated": False, "error": "invalid bearer token"}
        groups = ["system:serviceaccounts", "system:authenticated"]
        return {"authenticated": True, "user": {"username": self.users[token], "groups": groups}}

    async def review_access(
        self, *, user: str, uid: str, groups: list[str], path: str, verb: str
    ) -> bool:
        self.calls.append(f"SubjectAccessReview {verb} {path}")
        return user in self.allowed and "system:authenticated" in groups


def _access(reviews: Reviews, *, ttl: float = 60.0, max_entries: int = 256) -> MetricsAccess:
    clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    return MetricsAccess(reviews, clock=clock, ttl=ttl, max_entries=max_entries)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer   abc", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_bearer_header_carries_a_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_a_user_allowed_to_get_metrics_is_served() -> None:
    reviews = Reviews(users={"good": PROMETHEUS}, allowed={PROMETHEUS})

    decision = await _access(reviews).decide("good")

    assert (decision.status, decision.user) == (200, PROMETHEUS)
    assert reviews.calls == ["TokenReview", "SubjectAccessReview get /metrics"]


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (None, 401, "a bearer token is required"),
        ("forged", 401, "the bearer token is not valid"),
        ("other", 403, 'user "system:serviceaccount:team-a:app" may not get /metrics'),
    ],
)
async def test_no_token_a_bad_token_and_a_user_without_the_permission_are_refused(
    token: str | None, status: int, reason: str
) -> None:
    reviews = Reviews(
        users={"good": PROMETHEUS, "other": "system:serviceaccount:team-a:app"},
        allowed={PROMETHEUS},
    )

    decision = await _access(reviews).decide(token)

    assert not decision.allowed
    assert decision.status == status
    assert reason in decision.reason


async def test_answers_are_kept_for_the_ttl_then_asked_again() -> None:
    reviews = Reviews(users={"good": PROMETHEUS, "other": "someone"}, allowed={PROMETHEUS})
    clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    access = MetricsAccess(reviews, clock=clock, ttl=60)

    for _ in range(4):  # a scrape every 15 s
        assert (await access.decide("good")).allowed
        assert (await access.decide("other")).status == 403
        clock.advance(14.9)
    assert len(reviews.calls) == 4, "one TokenReview and one SubjectAccessReview per token"

    clock.advance(1)
    reviews.allowed.clear()  # the ClusterRoleBinding was deleted
    assert (await access.decide("good")).status == 403
    assert len(reviews.calls) == 6


async def test_an_api_server_that_does_not_answer_gives_503_and_is_asked_again() -> None:
    reviews = Reviews(users={"good": PROMETHEUS}, allowed={PROMETHEUS}, down=True)
    access = _access(reviews)

    assert (await access.decide("good")).status == 503
    reviews.down = False
    assert (await access.decide("good")).allowed


async def test_the_cache_forgets_the_oldest_tokens_beyond_its_size() -> None:
    reviews = Reviews(users={f"t{n}": PROMETHEUS for n in range(3)}, allowed={PROMETHEUS})
    access = _access(reviews, max_entries=2)

    for token in ("t0", "t1", "t2", "t2", "t1"):
        await access.decide(token)
    assert len(reviews.calls) == 6  # t0, t1, t2 reviewed; t2 and t1 remembered
    await access.decide("t0")
    assert len(reviews.calls) == 8  # t0 was forgotten
