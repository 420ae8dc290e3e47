"""Test support: run the real emulator HTTP server on a free loopback port.

    from vpcsim.testing import run_emulator

    with run_emulator() as emu:                 # built-in default state
        env = emu.client_env()                  # TENCENTCLOUD_* / TKE_CLOUD_* for a client
        emu.set_faults(throttle_ratio=0.2)
        iid = emu.add_instance("subnet-sim00003", "S5.LARGE8")
        urllib.request.urlopen(emu.metadata_url(iid) + "instance-id")
        assert not emu.leaked_enis()

See docs/cloud.md for the whole handle API."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vpcsim import tls
from vpcsim.cli import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from vpcsim.faults import Faults
from vpcsim.server import Emulator, make_server
from vpcsim.spec import DEFAULT_SPEC, build

# The tag the product writes on the ENIs it creates (documented in docs/cloud.md).
CLUSTER_TAG = "tke-eni-cluster-id"


class _EmulatorClient:
    """What both handles offer: addresses, a client's environment, admin calls over HTTP."""

    host: str
    port: int
    endpoint: str
    url: str
    secret_id: str
    secret_key: str
    region: str
    # HTTPS (when started with it): the port and the CA certificate clients trust
    https_port: int | None = None
    ca_file: Path | None = None

    @property
    def https_endpoint(self) -> str:
        """``127.0.0.1:PORT`` of the HTTPS listener (``HttpProfile(endpoint=...)``)."""
        if self.https_port is None:
            raise RuntimeError("this emulator serves no HTTPS: start it with https=True")
        return f"{self.host}:{self.https_port}"

    def state(self) -> dict[str, Any]:
        """The full state dump (``GET /_admin/state``)."""
        return dict(self.admin("GET", "/_admin/state"))

    def leaked_enis(self, cluster_id: str | None = None) -> list[dict[str, Any]]:
        """Secondary ENIs still present (optionally only those tagged with ``cluster_id``)."""
        return [
            e
            for e in self.state()["enis"]
            if not e["primary"] and (cluster_id is None or e["tags"].get(CLUSTER_TAG) == cluster_id)
        ]

    # --- addresses ---------------------------------------------------------------
    def metadata_url(self, instance_id: str) -> str:
        """Base URL of this instance's metadata service, ending in ``/latest/meta-data/``."""
        return f"{self.url}/meta/{instance_id}/latest/meta-data/"

    # --- a client's configuration -------------------------------------------------
    def client_env(self) -> dict[str, str]:
        """The environment a Tencent Cloud client reads to reach this emulator:
        the SDK's credential variables and the product's documented cloud
        variables (endpoint, region, protocol; see docs/cloud.md "Settings")."""
        return {
            "TENCENTCLOUD_SECRET_ID": self.secret_id,
            "TENCENTCLOUD_SECRET_KEY": self.secret_key,
            "TKE_CLOUD_REGION": self.region,
            "TKE_CLOUD_VPC_ENDPOINT": self.endpoint,
            "TKE_CLOUD_CVM_ENDPOINT": self.endpoint,
            "TKE_CLOUD_PROTOCOL": "http",
        }

    def admin(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        """Call an admin endpoint over HTTP (``/_admin/...``)."""
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(  # noqa: S310 - loopback
            self.url + path, data=body, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())


class EmulatorHandle(_EmulatorClient):
    """A running emulator. ``endpoint`` is ``127.0.0.1:PORT`` (what
    ``HttpProfile(protocol="http", endpoint=...)`` wants); ``url`` is ``http://…``."""

    def __init__(
        self,
        emulator: Emulator,
        host: str,
        port: int,
        *,
        https_port: int | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.https_port = https_port
        self.ca_file = ca_file
        self.endpoint = f"{host}:{port}"
        self.url = f"http://{self.endpoint}"
        self.secret_id = emulator.secret_id
        self.secret_key = emulator.credentials[emulator.secret_id].secret_key
        self.region = emulator.world.region

    # --- state -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The full state dump (same as ``GET /_admin/state``)."""
        return self.emulator.dump()

    @property
    def instance_ids(self) -> list[str]:
        return sorted(self.emulator.world.instances)

    def set_faults(self, **fields: Any) -> dict[str, Any]:
        """Change fault knobs (see ``vpcsim.faults.Faults``); returns them all."""
        self.emulator.faults.update(fields)
        return self.emulator.faults.to_dict()

    def clear_faults(self) -> None:
        self.emulator.faults.update(Faults().to_dict())

    def add_instance(
        self,
        subnet_id: str,
        instance_type: str = "S5.LARGE8",
        *,
        instance_id: str | None = None,
        name: str = "",
        private_ip: str | None = None,
    ) -> str:
        """Add a running instance (with its primary ENI) and return its id."""
        with self.emulator.world.lock:
            inst = self.emulator.world.add_instance(
                subnet_id, instance_type, instance_id=instance_id, name=name, private_ip=private_ip
            )
        self.emulator.save()
        return inst.instance_id


@contextmanager
def run_emulator(
    state: dict[str, Any] | None = None,
    faults: dict[str, Any] | None = None,
    *,
    persist: Path | None = None,
    seed: int | None = 1,
    secret_id: str = DEFAULT_SECRET_ID,
    secret_key: str = DEFAULT_SECRET_KEY,
    ca_file: Path | None = None,
) -> Iterator[EmulatorHandle]:
    """Start the emulator's HTTP server in a thread on 127.0.0.1:<free port>;
    stop it on exit. ``state`` is a spec (see ``vpcsim.spec``) or a dump;
    ``faults`` sets ``Faults`` fields (rate limits stay on unless ``rate_limits=False``).
    With ``ca_file``, it also serves HTTPS (``handle.https_endpoint``) and writes
    the CA certificate clients must trust to that path."""
    if persist is not None and persist.exists():
        world = build(json.loads(persist.read_text()))
    else:
        world = build(state if state is not None else DEFAULT_SPEC)
    emu = Emulator(
        world,
        secret_id=secret_id,
        secret_key=secret_key,
        faults=Faults.from_dict(faults or {}),
        persist=persist,
        seed=seed,
    )
    servers = [make_server(emu, "127.0.0.1", 0)]
    if ca_file is not None:
        pair = tls.issue(tls.LOOPBACK_NAMES)
        servers.append(make_server(emu, "127.0.0.1", 0, tls.server_context(pair)))
        tls.write_ca(ca_file, pair)
    ports = [int(s.server_address[1]) for s in servers]
    threads = [
        threading.Thread(target=s.serve_forever, args=(0.05,), name=f"vpcsim-{p}", daemon=True)
        for s, p in zip(servers, ports, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        https_port = ports[1] if ca_file is not None else None
        yield EmulatorHandle(emu, "127.0.0.1", ports[0], https_port=https_port, ca_file=ca_file)
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
        emu.save()


class RemoteEmulator(_EmulatorClient):
    """A ``tke-vpcsim`` process (see ``spawn_emulator``), driven over HTTP only."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        port: int,
        secret_id: str,
        secret_key: str,
        region: str = "ap-guangzhou",
        *,
        https_port: int | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.proc = proc
        self.https_port = https_port
        self.ca_file = ca_file
        self.host = "127.0.0.1"
        self.port = port
        self.endpoint = f"127.0.0.1:{port}"
        self.url = f"http://{self.endpoint}"
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.region = region

    @property
    def instance_ids(self) -> list[str]:
        return sorted(i["instance_id"] for i in self.state()["instances"])

    def set_faults(self, **fields: Any) -> dict[str, Any]:
        return dict(self.admin("POST", "/_admin/faults", fields))

    def add_instance(
        self,
        subnet_id: str,
        instance_type: str = "S5.LARGE8",
        *,
        instance_id: str | None = None,
        name: str = "",
        private_ip: str | None = None,
    ) -> str:
        inst = self.admin(
            "POST",
            "/_admin/instances",
            {
                "subnet_id": subnet_id,
                "instance_type": instance_type,
                "instance_id": instance_id,
                "name": name,
                "private_ip": private_ip,
            },
        )
        return str(inst["instance_id"])

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM (the state is saved), then SIGKILL after ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL, no chance to save (crash tests)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def spawn_emulator(
    workdir: Path,
    state: dict[str, Any] | None = None,
    faults: dict[str, Any] | None = None,
    *,
    persist: Path | None = None,
    extra_args: Sequence[str] = (),
    https: bool = False,
) -> Iterator[RemoteEmulator]:
    """Run ``tke-vpcsim`` as a separate process on a free loopback port; stop it on
    exit. ``workdir`` holds the port file, the state file and the log; with
    ``https``, also the HTTPS port file and the CA certificate (``vpcsim-ca.pem``)."""
    exe = shutil.which("tke-vpcsim", path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError(
            "tke-vpcsim is not installed: run hack/setup.sh (step: pip install -e .)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / "vpcsim.port"
    port_file.unlink(missing_ok=True)
    args = [exe, "serve", "--port", "0", "--port-file", str(port_file)]
    https_file, ca_file = workdir / "vpcsim.https-port", workdir / "vpcsim-ca.pem"
    if https:
        https_file.unlink(missing_ok=True)
        args += ["--https-port", "0", "--https-port-file", str(https_file)]
        args += ["--ca-cert", str(ca_file)]
    if state is not None:
        spec = workdir / "vpcsim-state.json"
        spec.write_text(json.dumps(state))
        args += ["--state", str(spec)]
    if faults:
        args += ["--faults", json.dumps(faults)]
    if persist is not None:
        args += ["--persist", str(persist)]
    log = (workdir / "vpcsim.log").open("ab")
    proc = subprocess.Popen([*args, *extra_args], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                f"tke-vpcsim did not start; see {workdir / 'vpcsim.log'}: "
                + (workdir / "vpcsim.log").read_text()[-2000:]
            )
        time.sleep(0.02)
    remote = RemoteEmulator(
        proc,
        int(port_file.read_text()),
        DEFAULT_SECRET_ID,
        DEFAULT_SECRET_KEY,
        str((state or DEFAULT_SPEC).get("region", "ap-guangzhou")),
        https_port=int(https_file.read_text()) if https else None,
        ca_file=ca_file if https else None,
    )
    try:
        yield remote
    finally:
        remote.stop()
