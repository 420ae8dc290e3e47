"""A real ``tke-eni-ipamd`` process against a control plane and the emulator (for
kill -9, leader election and the benchmark), with the tests' short periods."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from harness.ipamd_world import CLUSTER
from harness.programs import program
from vpcsim.testing import EmulatorHandle


class IpamdProcess:
    """``tke-eni-ipamd`` with the flags below plus ``extra``; ``argv`` may be edited
    before ``start`` (the benchmark puts the default periods back)."""

    def __init__(self, emu: EmulatorHandle, kubeconfig: Path, log: Path, *extra: str) -> None:
        self.argv = [
            program("tke-eni-ipamd"),
            "--clusterid",
            CLUSTER,
            "--kubeconfig",
            str(kubeconfig),
            "--cloud-endpoint",
            emu.endpoint,
            "--cloud-protocol",
            "http",
            "--cloud-region",
            emu.region,
            "--metrics-address",
            "127.0.0.1:0",
            "--health-address",
            "127.0.0.1:0",
            "--reconcile-interval",
            "3s",
            "--subnet-refresh-interval",
            "2s",
            "--trim-interval",
            "1s",
            "--ip-cooldown",
            "0s",
            "--cloud-task-poll",
            "0.01",
            "--cloud-backoff-base",
            "0.02",
            "--cloud-backoff-max",
            "0.5",
            # leaks from a kill -9 are deleted within the test (default: 10m)
            "--leaked-eni-min-age",
            "1s",
            *extra,
        ]
        self.env = {
            **os.environ,
            "TENCENTCLOUD_SECRET_ID": emu.secret_id,
            "TENCENTCLOUD_SECRET_KEY": emu.secret_key,
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IpamdProcess:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=out, start_new_session=True
        )
        out.close()
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])
