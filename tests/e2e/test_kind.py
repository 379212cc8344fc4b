"""The integration tier again, on a kind cluster, where Docker and kind exist.

Skipped, with the reason, on machines without a Docker engine or kind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.cluster import docker_engine_missing_reason

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_integration_tier_passes_on_a_kind_cluster() -> None:
    reason = docker_engine_missing_reason()
    if reason is not None:
        pytest.skip(f"kind tier needs Docker and kind: {reason}")

    # Only the smoke tests that do not rely on kwok's simulated pod outcomes.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(REPO / "tests" / "integration" / "test_control_plane.py"),
            "--cluster=kind",
            "-k",
            "not annotated_for_failure",
            "-q",
        ],
        cwd=REPO,
        timeout=1800,
    )
    assert result.returncode == 0
