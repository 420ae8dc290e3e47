"""The device plugin against the kubelet stand-in, over real gRPC on unix
sockets: registration, kubelet restarts, an absent kubelet, plugin restart,
SIGTERM, concurrent and malformed Allocate calls."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.names import RESOURCE_ENI_IP
from device_plugin.manager import DevicePluginManager
from device_plugin.settings import Settings
from harness.kubelet import CHECKPOINT, KubeletStandin
from protos.v1beta1 import api_pb2, api_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
R = RESOURCE_ENI_IP
S5_LARGE8 = 27  # (4 − 1) × (10 − 1)

MakePlugin = Callable[..., DevicePluginManager]


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dp-", dir="/tmp")  # short: unix socket paths ≤ 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir: str) -> Iterator[KubeletStandin]:
    k = KubeletStandin(plugin_dir).start()
    yield k
    k.stop()


def settings_for(plugin_dir: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "device_plugin_dir": plugin_dir,
        "instance_id": "ins-test0001",
        "instance_type": "S5.LARGE8",
        "limits_source": "table",
        "metadata_url": "http://127.0.0.1:9/latest/meta-data/",  # never asked: overrides
        "metrics_bind_address": "",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def make_plugin() -> Iterator[MakePlugin]:
    made: list[DevicePluginManager] = []

    def make(plugin_dir: str, **overrides: object) -> DevicePluginManager:
        manager = DevicePluginManager(settings_for(plugin_dir, **overrides))
        manager.start()
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.stop()


def metric(manager: DevicePluginManager, name: str, **labels: str) -> float:
    value = manager.metrics.registry.get_sample_value(f"tke_eni_device_plugin_{name}", labels)
    return value or 0.0


def wait_registrations(plugin: DevicePluginManager, count: int, timeout: float = 30) -> None:
    """The kubelet may see the devices before our Register call has returned."""
    deadline = time.monotonic() + timeout
    while plugin.registration_count < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert plugin.registration_count >= count, plugin.registration_count


def plugin_stub(plugin_dir: str) -> tuple[grpc.Channel, api_pb2_grpc.DevicePluginStub]:
    channel = grpc.insecure_channel(f"unix://{plugin_dir}/tke-eni-ip.sock")
    return channel, api_pb2_grpc.DevicePluginStub(channel)


def test_registration(plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin) -> None:
    checkpoint = Path(plugin_dir, CHECKPOINT).read_bytes()
    plugin = make_plugin(plugin_dir)
    assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8), kubelet.register_errors
    assert kubelet.register_errors == []
    (_, resource, endpoint), *_ = kubelet.registrations
    assert (resource, endpoint) == (R, "tke-eni-ip.sock")
    ep = kubelet.endpoint(R)
    assert ep is not None
    assert ep.options.get_preferred_allocation_available is True
    assert ep.options.pre_start_required is False
    devices = kubelet.devices(R)
    assert sorted(devices) == [f"eni-ip-{i:03d}" for i in range(S5_LARGE8)]
    assert set(devices.values()) == {"Healthy"}
    assert ep.messages == 1  # the full list at once on open
    assert stat.S_ISSOCK(os.stat(plugin.socket_path).st_mode)
    assert Path(plugin_dir, CHECKPOINT).read_bytes() == checkpoint  # never ours to write
    wait_registrations(plugin, 1)
    assert metric(plugin, "registrations_total") == 1
    assert metric(plugin, "reregistrations_total") == 0
    assert metric(plugin, "capacity") == S5_LARGE8
    # the gRPC health service answers on the plugin's socket
    with grpc.insecure_channel(f"unix://{plugin.socket_path}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "v1beta1.DevicePlugin"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # and one container gets what it asked for
    resp = kubelet.allocate(R, 1)
    assert resp.envs["TKE_ENI_IP_DEVICE_IDS"] == "eni-ip-000"


def test_kubelet_restart_twenty_times(
    plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin
) -> None:
    plugin = make_plugin(plugin_dir)  # default watch interval (0.1 s)
    assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8)
    wait_registrations(plugin, 1)
    ids = sorted(kubelet.devices(R))
    for n in range(20):
        kubelet.restart()
        assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8, timeout=30), (
            f"not re-registered after kubelet restart {n + 1}: {kubelet.register_errors}"
        )
        assert sorted(kubelet.devices(R)) == ids  # stable ids
        wait_registrations(plugin, n + 2)  # our Register call has returned
    gaps = kubelet.gaps(R)
    print(
        "\nkubelet restart → capacity back (ms): "
        + " ".join(f"{g * 1000:.0f}" for g in gaps)
        + f"\nmax {max(gaps) * 1000:.0f} ms, over 1 s: {sum(g > 1.0 for g in gaps)}"
    )
    assert len(gaps) == 20 and all(g != float("inf") for g in gaps)
    assert kubelet.register_errors == []
    wait_registrations(plugin, 21)
    assert metric(plugin, "reregistrations_total") == 20
    assert os.path.exists(os.path.join(plugin_dir, CHECKPOINT))


def test_kubelet_sock_recreated_without_deleting_plugin_sockets(
    plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin
) -> None:
    plugin = make_plugin(plugin_dir)
    assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8)
    wait_registrations(plugin, 1)
    for n in range(3):
        kubelet.stop()  # kubelet.sock goes away, our socket stays
        kubelet.start()  # a new kubelet.sock
        assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8, timeout=30), kubelet.register_errors
        wait_registrations(plugin, n + 2)
    wait_registrations(plugin, 4)
    assert metric(plugin, "reregistrations_total") == 3


def test_kubelet_absent_at_start(plugin_dir: str, make_plugin: MakePlugin) -> None:
    # a stale kubelet.sock of a dead kubelet (a socket file nobody listens on):
    # Register is refused, the plugin backs off and keeps trying
    kubelet_sock = os.path.join(plugin_dir, "kubelet.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(kubelet_sock)
    s.close()
    plugin = make_plugin(plugin_dir, register_backoff_max=0.5)
    deadline = time.monotonic() + 20
    while metric(plugin, "registration_failures_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(plugin, "registration_failures_total") >= 2
    assert plugin._thread is not None and plugin._thread.is_alive()  # no crash
    # no kubelet at all for a while
    os.unlink(kubelet_sock)
    time.sleep(0.5)
    assert plugin._thread.is_alive()
    assert not plugin.registered.is_set()
    # the kubelet comes up: registered without any help
    with KubeletStandin(plugin_dir) as kubelet:
        assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8, timeout=30), kubelet.register_errors
        wait_registrations(plugin, 1)
        assert metric(plugin, "registrations_total") == 1


def test_plugin_restart_keeps_device_ids(
    plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin
) -> None:
    first = make_plugin(plugin_dir)
    assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8)
    ids = sorted(kubelet.devices(R))
    kubelet.allocate(R, 2)
    first.stop()
    # the stream ended: every device unhealthy at once, capacity unchanged
    assert kubelet.wait_capacity(R, S5_LARGE8, 0, streaming=False)
    assert not os.path.exists(first.socket_path)
    # a new process leaves a stale socket behind? simulate one, then restart
    Path(first.socket_path).write_text("stale")
    make_plugin(plugin_dir)
    assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8), kubelet.register_errors
    assert sorted(kubelet.devices(R)) == ids
    assert len(kubelet.registrations) == 2


def test_sigterm_stops_cleanly(plugin_dir: str, kubelet: KubeletStandin) -> None:
    exe = Path(sys.executable).with_name("tke-eni-device-plugin")
    assert exe.exists(), f"{exe} missing: run hack/setup.sh (step: pip install -e '.[test]')"
    proc = subprocess.Popen(
        [
            str(exe),
            "--device-plugin-dir",
            plugin_dir,
            "--instance-id",
            "ins-sig",
            "--instance-type",
            "SA2.2XLARGE16",
            "--limits-source",
            "table",
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TKE_ENI_DP_MAX_PODS": "40"},
    )
    try:
        assert kubelet.wait_capacity(R, 40, 40, timeout=30), kubelet.register_errors
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert not os.path.exists(os.path.join(plugin_dir, "tke-eni-ip.sock"))
    assert kubelet.wait_capacity(R, 40, 0, streaming=False)  # stream closed → all unhealthy
    assert '"msg": "device plugin stopped"' in err
    assert '"signal": "SIGTERM"' in err


def test_concurrent_allocate(
    plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin
) -> None:
    plugin = make_plugin(plugin_dir, instance_type="SA2.2XLARGE16")
    assert kubelet.wait_capacity(R, 95, 95)
    channel, stub = plugin_stub(plugin_dir)
    errors: list[BaseException] = []
    per_thread, threads = 50, 16

    def worker(n: int) -> None:
        try:
            for i in range(per_thread):
                ids = [f"eni-ip-{(n * 5 + i) % 95:03d}"]
                resp = stub.Allocate(
                    api_pb2.AllocateRequest(
                        container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids)]
                    ),
                    timeout=30,
                )
                assert len(resp.container_responses) == 1
                assert resp.container_responses[0].envs["TKE_ENI_IP_DEVICE_IDS"] == ids[0]
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    channel.close()
    assert errors == []
    assert metric(plugin, "allocate_requests_total", result="ok") == per_thread * threads
    assert metric(plugin, "allocated_devices_total") == per_thread * threads


def test_allocate_many_containers_one_response_each(
    plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin
) -> None:
    make_plugin(plugin_dir)
    assert kubelet.wait_capacity(R, S5_LARGE8)
    channel, stub = plugin_stub(plugin_dir)
    with channel:
        resp = stub.Allocate(
            api_pb2.AllocateRequest(
                container_requests=[
                    api_pb2.ContainerAllocateRequest(devices_ids=["eni-ip-001"]),
                    api_pb2.ContainerAllocateRequest(devices_ids=["eni-ip-002", "eni-ip-003"]),
                ]
            )
        )
        assert [r.envs["TKE_ENI_IP_DEVICE_IDS"] for r in resp.container_responses] == [
            "eni-ip-001",
            "eni-ip-002,eni-ip-003",
        ]
        pref = stub.GetPreferredAllocation(
            api_pb2.PreferredAllocationRequest(
                container_requests=[
                    api_pb2.ContainerPreferredAllocationRequest(
                        available_deviceIDs=[
                            "eni-ip-009",
                            "eni-ip-004",
                            "eni-ip-002",
                            "eni-ip-010",
                        ],
                        must_include_deviceIDs=["eni-ip-010"],
                        allocation_size=3,
                    )
                ]
            )
        )
        assert list(pref.container_responses[0].deviceIDs) == [
            "eni-ip-010",
            "eni-ip-002",
            "eni-ip-004",
        ]
        assert (
            stub.PreStartContainer(api_pb2.PreStartContainerRequest(devices_ids=["eni-ip-001"]))
            == api_pb2.PreStartContainerResponse()
        )


BAD_ALLOCATES = [
    (api_pb2.AllocateRequest(), "no container_requests"),
    (
        api_pb2.AllocateRequest(container_requests=[api_pb2.ContainerAllocateRequest()]),
        "has no device ids",
    ),
    (
        api_pb2.AllocateRequest(
            container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=["eni-ip-027"])]
        ),
        "unknown device id(s) 'eni-ip-027'",
    ),
    (
        api_pb2.AllocateRequest(
            container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=["gpu-0"])]
        ),
        "unknown device id(s) 'gpu-0'",
    ),
    (
        api_pb2.AllocateRequest(
            container_requests=[
                api_pb2.ContainerAllocateRequest(devices_ids=["eni-ip-001", "eni-ip-001"])
            ]
        ),
        "repeats a device id",
    ),
    (
        api_pb2.AllocateRequest(
            container_requests=[
                api_pb2.ContainerAllocateRequest(devices_ids=["eni-ip-001"]),
                api_pb2.ContainerAllocateRequest(devices_ids=["x" * 200]),
            ]
        ),
        "in container request 1",
    ),
]


def test_malformed_requests(
    plugin_dir: str, kubelet: KubeletStandin, make_plugin: MakePlugin
) -> None:
    plugin = make_plugin(plugin_dir)
    assert kubelet.wait_capacity(R, S5_LARGE8)
    channel, stub = plugin_stub(plugin_dir)
    with channel:
        for request, message in BAD_ALLOCATES:
            with pytest.raises(grpc.RpcError) as info:
                stub.Allocate(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in info.value.details()
            assert R in info.value.details()
        with pytest.raises(grpc.RpcError) as info:
            stub.GetPreferredAllocation(
                api_pb2.PreferredAllocationRequest(
                    container_requests=[
                        api_pb2.ContainerPreferredAllocationRequest(allocation_size=-1)
                    ]
                )
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # bytes that are not an AllocateRequest at all
        raw = channel.unary_unary(
            "/v1beta1.DevicePlugin/Allocate",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff\x0f", timeout=10)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        # an unknown method
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/v1beta1.DevicePlugin/Nope")(b"", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # still serving, still registered
        ok = stub.Allocate(
            api_pb2.AllocateRequest(
                container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=["eni-ip-026"])]
            )
        )
        assert len(ok.container_responses) == 1
    assert metric(plugin, "allocate_requests_total", result="rejected") == len(BAD_ALLOCATES)
    assert kubelet.capacity(R) == S5_LARGE8 and plugin.registered.is_set()


def test_register_rejected_for_bad_resource_name(plugin_dir: str, kubelet: KubeletStandin) -> None:
    """The stand-in refuses what a real kubelet refuses; our settings refuse it first."""
    from device_plugin.settings import SettingsError, load

    with pytest.raises(SettingsError):
        load(["--resource-name", "eni-ip"], {})
    # a plugin that bypasses settings validation is refused by the kubelet
    manager = DevicePluginManager(
        settings_for(plugin_dir, resource_name="eni-ip", register_backoff_max=0.2)
    )
    manager.start()
    try:
        assert kubelet.wait_for(lambda: len(kubelet.register_errors) >= 1)
        assert "invalid extended resource name" in kubelet.register_errors[0]
        assert not manager.registered.is_set()
    finally:
        manager.stop()


def test_metrics_and_health_endpoints(plugin_dir: str, make_plugin: MakePlugin) -> None:
    import urllib.error
    import urllib.request

    plugin = make_plugin(plugin_dir, metrics_bind_address="127.0.0.1:0")
    assert plugin.status is not None
    base = f"http://127.0.0.1:{plugin.status.port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert get("/healthz")[0] == 200
    assert get("/readyz")[0] == 503  # no kubelet yet
    with KubeletStandin(plugin_dir) as kubelet:
        assert kubelet.wait_capacity(R, S5_LARGE8, S5_LARGE8)
        wait_registrations(plugin, 1)
        code, body = get("/readyz")
        assert code == 200 and "eni-ip-000..eni-ip-026" in body
        kubelet.allocate(R, 1)
        code, text = get("/metrics")
        assert code == 200
        for line in (
            "tke_eni_device_plugin_capacity 27.0",
            "tke_eni_device_plugin_healthy_devices 27.0",
            "tke_eni_device_plugin_registrations_total 1.0",
            "tke_eni_device_plugin_reregistrations_total 0.0",
            "tke_eni_device_plugin_allocated_devices_total 1.0",
            "tke_eni_device_plugin_registered 1.0",
        ):
            assert line in text, line
    assert get("/nope")[0] == 404
