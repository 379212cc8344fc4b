"""Run the operator as a subprocess with its own settings, as a Deployment would.

Each test's operator watches only the test's namespace and keeps its Lease there, so
tests never see each other's triggers. `kill()` is SIGKILL (a crash), `stop()` is
SIGTERM (graceful), `pause()`/`resume()` are SIGSTOP/SIGCONT (a partition from the API).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.harness.wait import wait_for


class OperatorProcess:
    """One operator process."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        namespace: str,
        workdir: Path,
        name: str = "operator",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.workdir = workdir
        self.name = name
        self.extra_env = dict(env or {})
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TRIGGER_OPERATOR_", "POD_"))
        }
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "TRIGGER_OPERATOR_NAMESPACES": f'["{self.namespace}"]',
                "TRIGGER_OPERATOR_OPERATOR_NAMESPACE": self.namespace,
                "TRIGGER_OPERATOR_SQLITE_PATH": str(self.workdir / "ledger.db"),
                "TRIGGER_OPERATOR_METRICS_PORT": "0",
                "TRIGGER_OPERATOR_IDENTITY": self.name,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> OperatorProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trigger_operator", "run", "--log-level", "DEBUG"],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 20) -> int | None:
        if not self.running():
            return self.process.returncode if self.process else None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float) -> None:
        wait_for(
            lambda: text in self.logs(),
            timeout=timeout,
            message=lambda: f"{text!r} in {self.name} log; tail:\n{self.logs()[-3000:]}",
        )
