"""The Argo CD health check and actions behave as their Argo CD tests say, in gopher-lua.

`hack/argocd-lua` is a Go module whose `go test` runs health.lua and every action of
deploy/argocd/resource_customizations on the samples listed in health_test.yaml and
actions/action_test.yaml, in the Lua interpreter Argo CD embeds. Go is the toolchain
the control plane is built with (make control-plane).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "hack" / "argocd-lua"


def test_health_check_and_actions_pass_their_gopher_lua_tests() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (needed by make control-plane too)")

    tested = subprocess.run(
        [go, "test", "-count=1", "./..."],
        cwd=MODULE,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
        timeout=600,
    )

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.startswith("ok"), tested.stdout
