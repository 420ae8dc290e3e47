"""localcluster.scheduler_config: the extender entry kube-scheduler gets, with and
without TLS (the real scheduler runs these in the integration tests)."""

from __future__ import annotations

from pathlib import Path

from localcluster.scheduler_config import SchedulerConfig, complete_config, eni_ip_extender


def test_https_extender_with_client_certificate() -> None:
    tls = {"certFile": "/p/client.crt", "keyFile": "/p/client.key", "caFile": "/p/ca.crt"}
    doc = SchedulerConfig(extenders=(eni_ip_extender("https://127.0.0.1:8443",
                                                     tls_config=tls),)).to_dict(Path("/kc"))
    (ext,) = doc["extenders"]
    assert ext["urlPrefix"] == "https://127.0.0.1:8443"
    assert ext["enableHTTPS"] is True
    assert ext["tlsConfig"] == tls
    assert ext["managedResources"] == [
        {"name": "tke.cloud.tencent.com/eni-ip", "ignoredByScheduler": False}]


def test_plain_extender_has_no_tls_config() -> None:
    doc = complete_config(SchedulerConfig(extenders=(eni_ip_extender("http://x:1"),)), Path("/k"))
    (ext,) = doc["extenders"]
    assert ext["enableHTTPS"] is False and "tlsConfig" not in ext
    assert doc["clientConnection"] == {"kubeconfig": "/k"}
