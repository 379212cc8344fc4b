"""Who may read `/metrics`: a bearer token, judged by the API server, remembered briefly.

As controller-runtime's secure metrics serving and kube-rbac-proxy do: the scrape's
bearer token goes to the API server in a TokenReview (whose token is it?), then a
SubjectAccessReview asks whether that user may `get` the non-resource URL `/metrics`
(granted by a ClusterRole with `nonResourceURLs`, manifests/base/metrics-reader.yaml).

Both answers, allowed or refused, are kept per token for `ttl` seconds, so a scraper
every 15 s costs two API calls per `ttl`, not per scrape; a permission taken away takes
effect within `ttl`. Only a digest of the token is kept, and at most `max_entries` of
them. A review the API server does not answer is not remembered: that scrape gets 503
and the next one asks again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from trigger_operator.clock import Clock
from trigger_operator.kube.gateway import KubeError


class Reviewer(Protocol):
    """The two reviews, as `KubeGateway` makes them."""

    async def review_token(self, token: str, *, audiences: list[str]) -> dict[str, Any]: ...

    async def review_access(
        self, *, user: str, uid: str, groups: list[str], path: str, verb: str
    ) -> bool: ...


@dataclass(frozen=True)
class Decision:
    """The answer to one request: an HTTP status (200 when allowed) and why."""

    status: int
    reason: str
    user: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


NO_TOKEN = Decision(401, "a bearer token is required (Authorization: Bearer ...)")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class MetricsAccess:
    """Decides, per bearer token, whether a request for `path` is served."""

    def __init__(
        self,
        reviewer: Reviewer,
        *,
        clock: Clock,
        path: str = "/metrics",
        ttl: float = 60.0,
        max_entries: int = 256,
    ) -> None:
        self._reviewer = reviewer
        self._clock = clock
        self._path = path
        self._ttl = ttl
        self._max_entries = max_entries
        self._known: OrderedDict[str, tuple[float, Decision]] = OrderedDict()

    async def decide(self, token: str | None) -> Decision:
        if token is None:
            return NO_TOKEN
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        try:
            decision = await self._review(token)
        except KubeError as error:
            return Decision(503, f"the API server did not review the token: {error}")
        self._known[key] = (now + self._ttl, decision)
        self._known.move_to_end(key)
        while len(self._known) > self._max_entries:
            self._known.popitem(last=False)
        return decision

    async def _review(self, token: str) -> Decision:
        status = await self._reviewer.review_token(token, audiences=[])
        user = status.get("user") or {}
        username = str(user.get("username") or "")
        if not status.get("authenticated") or not username:
            return Decision(401, "the bearer token is not valid")
        allowed = await self._reviewer.review_access(
            user=username,
            uid=str(user.get("uid") or ""),
            groups=[str(group) for group in user.get("groups") or []],
            path=self._path,
            verb="get",
        )
        if not allowed:
            return Decision(
                403, f'user "{username}" may not get {self._path} (nonResourceURLs)', username
            )
        return Decision(200, "allowed", username)
