"""`/metrics` and `/healthz` of a running operator, as Prometheus and the kubelet see them."""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.accounts import account_token, create_account
from tests.harness.cluster import KubeCluster
from tests.harness.http import get
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.devcluster import pki
from trigger_operator.devcluster.cluster import free_port

pytestmark = pytest.mark.integration


def _ok(url: str, token: str | None = None) -> str:
    status, body = get(url, token=token)
    assert status == 200, f"GET {url}: {status} {body}"
    return body


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_and_health_report_leadership_runs_and_lateness(
    triggers: Triggers, operators: Callable[..., OperatorProcess], scraper_token: str
) -> None:
    port = free_port()
    triggers.create(manifest("measured", schedule="*/2 * * * * *"))
    triggers.create(manifest("invalid", schedule="not a schedule"))
    operators(metrics_port=str(port))
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: len(triggers.jobs("measured")) >= 2, timeout=30, message="two runs")

    health = json.loads(wait_for(lambda: _ok(f"{base}/healthz"), timeout=10))
    samples = _samples(_ok(f"{base}/metrics", scraper_token))

    assert health == {"ok": True, "leading": True}
    assert samples[("trigger_operator_leader", ())] == 1.0
    assert samples[("trigger_operator_lease_transitions_total", (("event", "acquired"),))] == 1.0
    assert samples[("trigger_operator_runs_total", (("result", "started"),))] >= 2
    assert samples[("trigger_operator_dispatch_lateness_seconds_count", ())] >= 2
    assert samples[("trigger_operator_triggers", (("state", "scheduled"),))] == 1.0
    assert samples[("trigger_operator_triggers", (("state", "invalid"),))] == 1.0
    assert ("trigger_operator_ledger_queue_depth", ()) in samples


def test_metrics_answer_only_a_token_allowed_to_get_them_and_health_is_open(
    cluster: KubeCluster,
    namespace: str,
    triggers: Triggers,
    operators: Callable[..., OperatorProcess],
    scraper_token: str,
) -> None:
    port = free_port()
    create_account(cluster, namespace, "app")
    operators(metrics_port=str(port))
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(f"{base}/healthz")[0] == 200, timeout=15, message="/healthz up")

    unauthenticated = get(f"{base}/metrics")
    forged = get(f"{base}/metrics", token="not-a-token")
    other = get(f"{base}/metrics", token=account_token(cluster, namespace, "app"))
    allowed = get(f"{base}/metrics", token=scraper_token)
    health = get(f"{base}/healthz")

    assert unauthenticated == (401, "a bearer token is required (Authorization: Bearer ...)")
    assert forged == (401, "the bearer token is not valid")
    assert other == (
        403,
        f'user "system:serviceaccount:{namespace}:app" may not get /metrics (nonResourceURLs)',
    )
    assert allowed[0] == 200 and "trigger_operator_leader" in allowed[1]
    assert health[0] == 200 and json.loads(health[1])["ok"] is True


def test_metrics_without_auth_are_open_when_turned_off(
    triggers: Triggers, operators: Callable[..., OperatorProcess]
) -> None:
    port = free_port()
    operators(metrics_port=str(port), metrics_auth="false")
    url = f"http://127.0.0.1:{port}/metrics"

    _, body = wait_for(lambda: _answered(get(url)), timeout=15)

    assert "trigger_operator_leader" in body


def test_metrics_over_https_follow_a_renewed_certificate(
    triggers: Triggers,
    operators: Callable[..., OperatorProcess],
    scraper_token: str,
    tmp_path: Path,
) -> None:
    served = tmp_path / "serving"
    served.mkdir()

    def issue(name: str) -> ssl.SSLContext:
        """A new CA and a certificate for 127.0.0.1, installed as the served pair."""
        issued = pki.generate(tmp_path / name)
        shutil.copyfile(issued.apiserver.cert, served / "tls.crt")
        shutil.copyfile(issued.apiserver.key, served / "tls.key")
        return ssl.create_default_context(cafile=str(issued.ca.cert))

    first = issue("first")
    port = free_port()
    operators(metrics_port=str(port), metrics_cert_dir=str(served))
    url = f"https://127.0.0.1:{port}/metrics"

    status, body = wait_for(
        lambda: _answered(get(url, token=scraper_token, context=first), status=None), timeout=15
    )
    assert status == 200 and "trigger_operator_leader" in body
    assert get(url, context=first)[0] == 401
    assert get(url.replace("https:", "http:"))[0] == 0  # no plain HTTP beside it

    second = issue("second")
    # Connections opened after the next request get the renewed certificate.
    wait_for(
        lambda: get(url, context=first) and get(url, token=scraper_token, context=second)[0] == 200,
        timeout=15,
        message="the renewed certificate served",
    )
    assert get(url, context=first)[0] == 0, "the old certificate is no longer served"


def _answered(answer: tuple[int, str], *, status: int | None = 200) -> tuple[int, str] | None:
    """`answer` once the server answered (with `status`, or with any status when None)."""
    code = answer[0]
    return answer if (code == status if status is not None else code) else None
