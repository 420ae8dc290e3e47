"""A control plane left running by the CLI: found again through its state file."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.process import ManagedProcess
from localcluster.readiness import TLSClient, http_ok

STATE_FILE = "state.json"


@dataclass(frozen=True)
class RunningCluster:
    """What ``tke-localcluster up`` recorded in ``<state-dir>/cluster/state.json``."""

    workdir: Path
    kubeconfig: Path
    server: str
    processes: dict[str, ManagedProcess]

    @classmethod
    def load(cls, workdir: Path) -> RunningCluster | None:
        path = workdir / STATE_FILE
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read cluster state {path}: {exc}") from exc
        procs = {
            name: ManagedProcess(name=name, argv=[p["argv0"]], log_path=Path(p["log"]),
                                 pid=int(p["pid"]), start_ticks=p.get("start_ticks"))
            for name, p in raw["processes"].items()
        }
        return cls(workdir=Path(raw["workdir"]), kubeconfig=Path(raw["kubeconfig"]),
                   server=str(raw["server"]), processes=procs)

    def process_status(self) -> dict[str, bool]:
        """name → still running (the same process, not a reused pid)."""
        return {name: p.running() for name, p in self.processes.items()}

    def apiserver_ready(self) -> tuple[bool, str]:
        pki = self.workdir / "pki"
        tls = TLSClient(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
        return http_ok(f"{self.server}/readyz", tls, expect="ok")

    def stop(self, remove: bool = True) -> list[str]:
        """Stop every recorded process (reverse start order), then remove the workdir.

        Returns the names of the processes that were still running.
        """
        stopped = []
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.running():
                proc.stop()
                stopped.append(name)
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return stopped
