"""The alerts and the dashboard ask for series a real operator exports.

An operator on the dev control plane runs triggers that start, fail, are missed and are
invalid, so that each label value the rules select on is exported; then one
authenticated scrape of its /metrics must hold every metric name, label name and `=`
label value that the PrometheusRule, the Grafana dashboard and the promtool input
series use (tests/monitoring/queries.py reads them out of the PromQL).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.http import get
from tests.harness.operator import OperatorProcess
from tests.harness.triggers import Triggers, manifest
from tests.harness.wait import wait_for
from tests.monitoring.queries import all_queries
from trigger_operator.devcluster.cluster import free_port

pytestmark = pytest.mark.integration

LONG_AGO = "2026-01-01T00:00:00Z"


def _labels(text: str) -> dict[str, dict[str, set[str]]]:
    """metric sample name -> label name -> the values seen."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name]
            for label, value in sample.labels.items():
                found[sample.name][label].add(value)
    return found


def test_alerts_and_dashboard_use_only_series_the_operator_exports(
    triggers: Triggers, operators: Callable[..., OperatorProcess], scraper_token: str
) -> None:
    port = free_port()
    triggers.create(manifest("often", schedule="*/2 * * * * *"))
    failing = {"triggers.dev/simulate-failure": "true"}
    triggers.create(manifest("fails", run_at=LONG_AGO, pod_annotations=failing))
    triggers.create(manifest("too-late", run_at=LONG_AGO, startingDeadlineSeconds=10))
    triggers.create(manifest("broken", schedule="not a schedule"))
    operators(metrics_port=str(port))
    url = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> dict[str, dict[str, set[str]]] | None:
        status, body = get(url, token=scraper_token)
        if status != 200:
            return None
        labels = _labels(body)
        results = labels["trigger_operator_runs_total"]["result"]
        return labels if {"started", "succeeded", "failed", "missed"} <= results else None

    exported = wait_for(
        scraped, timeout=60, message="started, succeeded, failed and missed runs exported"
    )

    missing = []
    for query in all_queries():
        for metric in sorted(query.metrics):
            if metric not in exported:
                missing.append(f"{query.where}: metric {metric}")
        for label in sorted(query.labels):
            if not any(label in exported.get(metric, {}) for metric in query.metrics):
                missing.append(f"{query.where}: label {label} on none of {query.metrics}")
        for metric, label, value in sorted(query.selected, key=str):
            values = exported.get(metric, {}).get(label)
            if values is None:
                missing.append(f"{query.where}: label {label} of {metric}")
            elif value is not None and value not in values:
                missing.append(f"{query.where}: {metric}{{{label}={value!r}}} (seen {values})")
    assert missing == []
