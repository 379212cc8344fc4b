"""What the shipped alerts and dashboard ask Prometheus for: metric names, label names and
label values, read out of their PromQL.

The expressions are this project's own, so a light reading is enough: a metric is a
`trigger_operator_*` name; a selector `name{label="value", ...}` ties labels (and
values, for `=`) to one metric; `by (...)`/`without (...)` name labels of the metrics of
that expression. Labels Prometheus adds when it scrapes (the ServiceMonitor's target
labels) are not the operator's and are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "overlays" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboard.json"
RULE_TESTS = Path(__file__).resolve().parent / "rules_test.yaml"

TARGET_LABELS = frozenset(
    {"job", "namespace", "pod", "instance", "service", "endpoint", "container"}
)
_METRIC = re.compile(r"\b(trigger_operator_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\b(trigger_operator_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@dataclass
class Query:
    """One PromQL expression and where it comes from."""

    where: str
    expr: str
    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)
    """Labels of the expression's metrics, from grouping clauses."""
    selected: set[tuple[str, str, str | None]] = field(default_factory=set)
    """(metric, label, value) of each selector matcher; value only for `=`."""

    def __post_init__(self) -> None:
        self.metrics = set(_METRIC.findall(self.expr))
        for clause in _GROUPING.findall(self.expr):
            self.labels |= {name.strip() for name in clause.split(",") if name.strip()}
        for metric, matchers in _SELECTOR.findall(self.expr):
            for label, op, value in _MATCHER.findall(matchers):
                self.selected.add((metric, label, value if op == "=" else None))
        self.labels -= TARGET_LABELS
        self.selected = {s for s in self.selected if s[1] not in TARGET_LABELS}


def rule_groups() -> list[dict[str, object]]:
    """The PrometheusRule's `spec.groups`: a rule file's content for promtool."""
    groups: list[dict[str, object]] = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    return groups


def rule_queries() -> Iterator[Query]:
    for group in rule_groups():
        for rule in group["rules"]:  # type: ignore[attr-defined]
            yield Query(f"alert {rule['alert']}", rule["expr"])


def dashboard_queries() -> Iterator[Query]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield Query(f"panel {panel['title']!r} {target['refId']}", target["expr"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            yield Query(f"variable {variable['name']}", query["query"])


def rule_test_series() -> Iterator[Query]:
    """The input series of the promtool tests, read as selectors."""
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for series in case["input_series"]:
            yield Query(f"rules_test.yaml {case['name']!r}", series["series"])


def all_queries() -> list[Query]:
    return [*rule_queries(), *dashboard_queries(), *rule_test_series()]
