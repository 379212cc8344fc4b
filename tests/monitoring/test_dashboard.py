"""The Grafana dashboard is valid JSON and asks only for metrics the operator exports.

The names are those of the operator's own registry (no cluster needed);
tests/integration/test_monitoring_metrics.py checks names, labels and label values
against a real operator's /metrics.
"""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from tests.monitoring.queries import DASHBOARD, all_queries, dashboard_queries
from trigger_operator.ledger.writer import LedgerMetrics
from trigger_operator.metrics import Metrics

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics.create(registry)
    LedgerMetrics(registry)
    return {
        family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]
    }


def test_dashboard_is_json_with_unique_panel_ids_and_a_query_in_each_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]

    assert dashboard["uid"] == "trigger-operator"
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel["targets"] and all(t["expr"] for t in panel["targets"]) for panel in panels)


def test_dashboard_shows_lateness_runs_missed_leadership_and_the_ledger_queue() -> None:
    shown = set().union(*(query.metrics for query in dashboard_queries()))

    assert {
        "trigger_operator_dispatch_lateness_seconds_bucket",
        "trigger_operator_runs_total",
        "trigger_operator_missed_runs_total",
        "trigger_operator_leader",
        "trigger_operator_lease_transitions_total",
        "trigger_operator_ledger_queue_depth",
    } <= shown


def test_alerts_dashboard_and_rule_tests_name_only_exported_metrics() -> None:
    exported = _exported_names()

    unknown = {
        (query.where, metric)
        for query in all_queries()
        for metric in query.metrics
        if metric not in exported
    }

    assert unknown == set()
