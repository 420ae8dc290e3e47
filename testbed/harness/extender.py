"""The scheduler extender as a process (its console script) against a control plane, and
what the tests and the benchmark set up around it for the real kube-scheduler: kwok nodes
in two zones, our CRDs (deploy/crds/), the ConfigMaps, deploy/'s scheduler
configuration pointed at the extender over mutual TLS (localcluster.extender_pki).
The CRDs and ConfigMaps go in with harness.kubeobjects."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from harness.programs import program
from localcluster import objects as ex
from localcluster.extender_pki import ExtenderPKI
from localcluster.fakenodes import FakeNode
from localcluster.objects import RESOURCE_ENI_IP as ENI_IP
from localcluster.objects import ZONE_LABEL
from localcluster.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER_CONFIG = ROOT / "deploy" / "scheduler-extender" / "kube-scheduler-config.yaml"
ZONE_A, ZONE_B = "ap-guangzhou-3", "ap-guangzhou-4"


def zone_nodes(zone: str, prefix: str, count: int, eni_ip: int = 10) -> list[FakeNode]:
    return [
        FakeNode(f"{prefix}-{i}", allocatable={ENI_IP: str(eni_ip)}, labels={ZONE_LABEL: zone})
        for i in range(count)
    ]


def shipped_scheduler_config(url_prefix: str, pki: ExtenderPKI, **overrides: Any) -> dict[str, Any]:
    """deploy/scheduler-extender/kube-scheduler-config.yaml, pointed at a test
    extender: its URL and the test PKI's files in tlsConfig (the control plane
    fills in its own kubeconfig)."""
    doc = yaml.safe_load(SCHEDULER_CONFIG.read_text())
    doc.pop("clientConnection", None)
    ext = doc["extenders"][0]
    assert ext["enableHTTPS"] is True and set(ext["tlsConfig"]) == {"certFile", "keyFile", "caFile"}
    ext["urlPrefix"] = url_prefix
    ext["tlsConfig"] = pki.tls_config()
    doc.update(overrides)
    return dict(doc)


class ExtenderProcess:
    """``tke-eni-scheduler-extender`` against a control plane: the verbs on
    ``port`` over mutual TLS (``pki``), health and metrics in plain HTTP on a
    second port."""

    def __init__(
        self, kubeconfig: Path, port: int, log_path: Path, *extra: str, pki: ExtenderPKI
    ) -> None:
        self.port = port
        (self.health_port,) = free_ports(1)
        self.pki = pki
        self.log_path = log_path
        self._log = log_path.open("wb")
        argv = [
            program("tke-eni-scheduler-extender"),
            "--kubeconfig",
            str(kubeconfig),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--health-port",
            str(self.health_port),
            *pki.extender_args(),
            "--log-format",
            "text",
            *extra,
        ]
        self.proc = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        """The verbs (kube-scheduler's urlPrefix)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def post(self, path: str, body: bytes) -> dict[str, Any]:
        """A verb, as kube-scheduler calls it (its client certificate)."""
        request = urllib.request.Request(  # noqa: S310 - https to the extender
            self.url + path, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(  # noqa: S310 - https to the extender
            request, timeout=10, context=self.pki.client_context()
        ) as r:
            return dict(json.loads(r.read()))

    def get(self, path: str) -> tuple[int, str]:
        """/healthz, /readyz, /metrics on the plain health port."""
        try:
            with urllib.request.urlopen(self.health_url + path, timeout=10) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"extender exited {self.proc.returncode}:\n{self.logs()}")
            with contextlib.suppress(OSError):
                code, last = self.get("/readyz")
                if code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"extender not ready in {timeout}s ({last.strip()}):\n{self.logs()}")

    def metric(self, name: str, **labels: str) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        line_start = f"{name}{{{want}}} " if want else f"{name} "
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.split()[-1])
        return 0.0

    def logs(self, lines: int = 60) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def pod_manifest(name: str, *, eni_ip: bool = True, static: bool = False) -> dict[str, Any]:
    pod = ex.pod(name, eni_ip=1 if eni_ip else None, static=static)
    pod["metadata"].pop("uid")
    pod["spec"]["containers"][0]["image"] = "busybox"
    return pod

