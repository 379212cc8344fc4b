"""The alert rules pass `promtool check rules` and their unit tests (`rules_test.yaml`).

promtool comes from Debian's `prometheus` package, installed by
`scripts/ensure-promtool.sh` (run by `make test`); where it cannot be installed these
tests are skipped and say why.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.queries import RULE_TESTS, rule_groups, rule_queries


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (scripts/ensure-promtool.sh installs it as root)")
    return found


def _rule_file(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    return path


def test_alert_rules_are_valid_for_promtool(promtool: str, tmp_path: Path) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", str(_rule_file(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(list(rule_queries()))} rules found" in checked.stdout


def test_alerts_fire_as_their_unit_tests_expect(promtool: str, tmp_path: Path) -> None:
    _rule_file(tmp_path)
    shutil.copyfile(RULE_TESTS, tmp_path / RULE_TESTS.name)

    tested = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {check["alertname"] for case in tests for check in case["alert_rule_test"]}
    fired = {
        check["alertname"]
        for case in tests
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    runbook = (RULE_TESTS.parents[2] / "docs" / "alerts.md").read_text()
    alerts = {query.where.removeprefix("alert ") for query in rule_queries()}

    assert tested == alerts
    assert fired == alerts, "every alert is seen firing at least once"
    for alert in sorted(alerts):
        assert f"### {alert}" in runbook, f"docs/alerts.md has no runbook for {alert}"
