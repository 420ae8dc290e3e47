"""The admission webhook (tke-eni-ip-webhook) in the local run, provisioned and
started the way a cluster does it, as processes:

1. ``configuration``: deploy/'s MutatingWebhookConfiguration with each webhook's
   ``clientConfig`` changed from the Service to ``url:
   https://127.0.0.1:<port>/mutate`` — the local overlay. The local control
   plane has no kube-proxy and no pod network on the host, so a Service's
   ClusterIP leads nowhere; the apiserver calls the loopback address the
   process listens on. Everything else (rules, failurePolicy Fail, selectors,
   timeouts) is deploy/'s.
2. ``provision``: the certs Job's container (argv + env from the Job, as the
   kubelet would give them) run as a process with a kubeconfig of the Job's
   ServiceAccount (so deploy/'s least-privilege RBAC is what it gets) and
   ``--extra-names 127.0.0.1`` (the url's host must be in the certificate): it
   creates the Secret and patches the caBundle, exactly as in a cluster.
3. ``secret_files``: the Secret's tls.crt / tls.key written to a directory —
   what the pod's Secret volume holds.
4. ``start``: the Deployment's container as a process on loopback ports, reading
   those files; ``wait_ready`` polls its /readyz.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localnode.proc import Daemon
from localrun.kube import Kube, wait_for
from localrun.manifests import ManifestError, container_process, containers, find
from localrun.programs import downward, from_workload, program_path

WEBHOOK = "tke-eni-ip-webhook"
CONFIGURATION = "add-pod-eni-ip-limit-webhook"
CERTS = "tke-eni-ip-webhook-certs"
NAMESPACE = "kube-system"


def configuration(objs: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """deploy/'s MutatingWebhookConfiguration calling ``url`` instead of the Service."""
    cfg = copy.deepcopy(find(objs, "MutatingWebhookConfiguration", CONFIGURATION))
    for hook in cfg["webhooks"]:
        path = hook["clientConfig"].get("service", {}).get("path", "")
        hook["clientConfig"] = {"url": url + path}
    return cfg


@dataclass
class LocalWebhook:
    objs: list[dict[str, Any]]
    kube: Kube
    workdir: Path
    port: int
    health_port: int
    #: a kubeconfig for a kube-system ServiceAccount (deploy/'s RBAC), by name
    credentials: Callable[[str], Path]
    extra_argv: tuple[str, ...] = ()
    daemon: Daemon | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "webhook-tls"

    def apply_configuration(self) -> dict[str, Any] | None:
        return self.kube.apply(configuration(self.objs, self.url))

    def provision(self, *extra: str) -> str:
        """Run the certs Job's command once; its log on success, ManifestError otherwise."""
        job = find(self.objs, "Job", CERTS)
        (c,) = containers(job)
        argv, env = container_process(self.objs, job, c, downward(f"{CERTS}-local"))
        cmd = [program_path(c["command"][0]), *argv, "--kubeconfig", str(self.credentials(CERTS)),
               "--extra-names", "127.0.0.1", "--log-format", "text", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False,
                              env={**os.environ, **env})
        log = self.workdir / "webhook-certs.log"
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"=== {' '.join(cmd)}\n{proc.stderr}{proc.stdout}")
        if proc.returncode != 0:
            raise ManifestError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
        return proc.stderr

    def secret_files(self) -> Path:
        """The Secret's certificate and key where the pod's volume would put them
        (written beside, then renamed: a reader never sees half a file)."""
        secret = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{WEBHOOK}-tls")
        if not secret:
            raise ManifestError(f"Secret {NAMESPACE}/{WEBHOOK}-tls missing: provision() first")
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        self.tls_dir.chmod(0o700)
        for key in ("tls.crt", "tls.key", "ca.crt"):
            tmp = self.tls_dir / f".{key}.tmp"
            tmp.write_bytes(base64.b64decode(secret["data"][key]))
            tmp.chmod(0o600)
            tmp.replace(self.tls_dir / key)
        return self.tls_dir

    def start(self) -> Daemon:
        workload = find(self.objs, "Deployment", WEBHOOK)
        self.daemon = from_workload(self.objs, workload, f"{WEBHOOK}-local",
                                    log=self.workdir / "webhook.log", extra_argv=[
            "--host", "127.0.0.1", "--port", str(self.port),
            "--health-port", str(self.health_port),
            "--tls-cert-file", str(self.tls_dir / "tls.crt"),
            "--tls-key-file", str(self.tls_dir / "tls.key"),
            "--log-format", "text", *self.extra_argv])
        self.daemon.start()
        return self.daemon

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.daemon is not None
            self.daemon.check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(  # noqa: S310
                    self.health_url + "/readyz", timeout=2) as r:
                return bool(r.status == 200)
            return False
        wait_for("the admission webhook /readyz", ready, timeout,
                 detail=lambda: self.daemon.log_tail() if self.daemon else "")

    def up(self) -> LocalWebhook:
        """Configuration, certificate, files, server: the whole install."""
        self.apply_configuration()
        self.provision()
        self.secret_files()
        self.start()
        self.wait_ready()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout)
            self.daemon = None
