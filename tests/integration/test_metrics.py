"""`/metrics` and `/healthz` of a running operator, as Prometheus and the kubelet see them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from trigger_operator.devcluster.cluster import free_port

pytestmark = pytest.mark.integration


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_and_health_report_leadership_runs_and_lateness(
    triggers: Triggers, operators: Callable[..., OperatorProcess]
) -> None:
    port = free_port()
    triggers.create(manifest("measured", schedule="*/2 * * * * *"))
    triggers.create(manifest("invalid", schedule="not a schedule"))
    operators(metrics_port=str(port))
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: len(triggers.jobs("measured")) >= 2, timeout=30, message="two runs")

    health = json.loads(wait_for(lambda: _get(f"{base}/healthz"), timeout=10))
    samples = _samples(_get(f"{base}/metrics"))

    assert health == {"ok": True, "leading": True}
    assert samples[("trigger_operator_leader", ())] == 1.0
    assert samples[("trigger_operator_lease_transitions_total", (("event", "acquired"),))] == 1.0
    assert samples[("trigger_operator_runs_total", (("result", "started"),))] >= 2
    assert samples[("trigger_operator_dispatch_lateness_seconds_count", ())] >= 2
    assert samples[("trigger_operator_triggers", (("state", "scheduled"),))] == 1.0
    assert samples[("trigger_operator_triggers", (("state", "invalid"),))] == 1.0
    assert ("trigger_operator_ledger_queue_depth", ()) in samples
