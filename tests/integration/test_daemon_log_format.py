"""Every daemon started for real (its console script) with ``--log-format json``
and ``--log-format text`` writes its lines in that format, its effective
configuration first with the extra field ``config`` (secrets redacted), and
the fields of its other lines kept. Each is made to log and then end without
any peer: ipamd and the extender on a kubeconfig that does not exist, the
agent on a state dir that is a file; the device plugin (no kubelet) and the
webhook (plain HTTP on a free port) run and are stopped with SIGTERM.
Nothing leaves loopback; every process is ended and reaped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warning|error) [\w.-]+: "
)
SECRET = "very-secret-key-value"


@dataclass
class Daemon:
    script: str
    argv: Callable[[Path], list[str]]
    #: a message after which the daemon is stopped with SIGTERM ("" = it exits by itself)
    stop_after: str = ""
    exit_code: int = 0
    #: a message (besides the start line) whose extra fields must be kept
    fielded: tuple[str, str] = ("", "")
    env: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        """The name in its start line (the extender's is its Deployment's name)."""
        return self.script.replace("scheduler-extender", "ip-scheduler")


def _state_file(tmp: Path) -> str:
    path = tmp / "state-is-a-file"
    path.write_text("")
    return str(path)


DAEMONS = {
    "ipamd": Daemon(
        "tke-eni-ipamd",
        lambda tmp: ["--clusterid", "cls-kjqul1ir", "--kubeconfig", str(tmp / "no-kubeconfig"),
                     "--metrics-address", "127.0.0.1:0", "--health-address", "127.0.0.1:0",
                     "--cloud-endpoint", "127.0.0.1:9", "--cloud-protocol", "http"],
        exit_code=1,
        env={"TENCENTCLOUD_SECRET_ID": "AKIDtest", "TENCENTCLOUD_SECRET_KEY": SECRET},
    ),
    "agent": Daemon(
        "tke-eni-agent",
        lambda tmp: ["--node-name", "n1", "--ip-source", "file",
                     "--ip-source-file", str(tmp / "ips.json"), "--pod-source", "none",
                     "--state-dir", _state_file(tmp), "--socket", str(tmp / "cni.sock"),
                     "--install-cni", "false", "--health-address", "", "--nice", "0"],
        exit_code=1,
        fielded=("fatal", "error"),
    ),
    "device-plugin": Daemon(
        "tke-eni-device-plugin",
        lambda tmp: ["--device-plugin-dir", str(tmp), "--instance-id", "ins-log",
                     "--instance-type", "S5.LARGE8", "--zone", "ap-guangzhou-3",
                     "--limits-source", "table", "--metadata-url", "http://127.0.0.1:9/",
                     "--metrics-bind-address", "127.0.0.1:0"],
        stop_after="device plugin starting",
        fielded=("signal received", "signal"),
    ),
    "scheduler-extender": Daemon(
        "tke-eni-scheduler-extender",
        lambda tmp: ["--insecure-http", "--host", "127.0.0.1", "--port", "0",
                     "--health-port", "-1", "--kubeconfig", str(tmp / "no-kubeconfig")],
        exit_code=1,
        fielded=("cannot reach the Kubernetes API", "error"),
    ),
    "webhook": Daemon(
        "tke-eni-ip-webhook",
        lambda tmp: ["--insecure-http", "--host", "127.0.0.1", "--port", "0",
                     "--health-port", "-1"],
        stop_after="serving",
        fielded=("serving", "address"),
    ),
}


def run(daemon: Daemon, fmt: str, tmp: Path) -> str:
    """The daemon's stderr, once it has ended (by itself or by SIGTERM)."""
    exe = BIN / daemon.script
    assert exe.exists(), f"{exe} missing: run hack/setup.sh (step: pip install -e '.[test]')"
    err_path = tmp / "stderr"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TKE_", "TENCENTCLOUD_"))}
    env.pop("KUBECONFIG", None)
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(exe), *daemon.argv(tmp), "--log-format", fmt, "--log-level", "info"],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            env={**env, **daemon.env}, start_new_session=True,
        )
    try:
        if daemon.stop_after:
            deadline = time.monotonic() + 60
            while daemon.stop_after not in err_path.read_text():
                assert proc.poll() is None, f"{daemon.script} ended early:\n{err_path.read_text()}"
                assert time.monotonic() < deadline, (
                    f"{daemon.script}: no {daemon.stop_after!r} in 60 s:\n{err_path.read_text()}")
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = err_path.read_text()
    assert rc == daemon.exit_code, f"{daemon.script} exited {rc}:\n{out}"
    return out


def parse_json(out: str) -> list[dict[str, Any]]:
    records = []
    for line in out.splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert {"ts", "level", "logger", "msg"} <= record.keys(), line
        records.append(record)
    return records


def check_text(out: str) -> list[str]:
    starts = [line for line in out.splitlines() if TEXT_LINE.match(line)]
    assert starts, out
    for line in out.splitlines():
        assert not line.startswith("{"), f"a JSON line in text format: {line}"
    return starts


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_json(name: str, tmp_path: Path) -> None:
    daemon = DAEMONS[name]
    out = run(daemon, "json", tmp_path)
    records = parse_json(out)
    (start,) = [r for r in records if r["msg"] == f"starting {daemon.program}"]
    assert start["level"] == "info"
    config = start["config"]
    assert (config["log_format"], config["log_level"]) == ("json", "info"), config
    assert SECRET not in out
    if name == "ipamd":
        assert config["cloud"]["secret_key"] == "<redacted>"
        assert config["cloud"]["secret_id"] == "AKIDtest"
    message, key = daemon.fielded
    if message:
        (hit, *_) = [r for r in records if r["msg"] == message]
        assert hit.get(key), hit


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_text(name: str, tmp_path: Path) -> None:
    daemon = DAEMONS[name]
    out = run(daemon, "text", tmp_path)
    lines = check_text(out)
    (start,) = [line for line in lines if f": starting {daemon.program} config=" in line]
    config = json.loads(start.split(" config=", 1)[1])
    assert (config["log_format"], config["log_level"]) == ("text", "info"), config
    assert SECRET not in out
    message, key = daemon.fielded
    if message:
        assert any(f": {message} " in line and f" {key}=" in line for line in lines), out
