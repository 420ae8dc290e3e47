"""Health endpoints and Prometheus metrics of a running agent."""

from __future__ import annotations

import os

from tests.fixtures_netns import PYTHON, AgentFactory, NetnsSet, Vpc, run_plugin, sh

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}


def get(ns: str, url: str) -> tuple[int, str]:
    """GET from inside the node netns (the agent listens on its loopback)."""
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout=10)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    out = sh(PYTHON, "-c", code, ns=ns).stdout
    status, _, body = out.partition("\n")
    return int(status), body


def test_health_and_metrics(vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101"]])
    agent = agents(node, "--health-address", "127.0.0.1:9867")
    base = "http://127.0.0.1:9867"
    assert get(node.ns, f"{base}/healthz")[0] == 200
    assert get(node.ns, f"{base}/readyz")[0] == 200
    assert get(node.ns, f"{base}/nope")[0] == 404
    pod = netns_set.add("p")
    ok = run_plugin(
        agent.plugin,
        "ADD",
        CONF,
        container_id="c1",
        netns=f"/run/netns/{pod}",
        args="K8S_POD_NAMESPACE=d;K8S_POD_NAME=p",
    )
    assert ok.rc == 0
    bad = run_plugin(
        agent.plugin,
        "ADD",
        dict(CONF, cniVersion="0.0.1"),
        container_id="c2",
        netns=f"/run/netns/{pod}",
    )
    assert bad.rc != 0
    sh("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", ns=node.ns)

    def metrics() -> str:
        status, body = get(node.ns, f"{base}/metrics")
        assert status == 200
        return body

    text = metrics()
    assert 'tke_eni_agent_cni_requests_total{result="ok",verb="ADD"} 1.0' in text
    assert 'tke_eni_agent_cni_errors_total{code="1",verb="ADD"} 1.0' in text
    assert 'tke_eni_agent_cni_request_seconds_count{verb="ADD"} 2.0' in text
    assert 'tke_eni_agent_drift_corrections_total{kind="eni"}' in text  # ENI brought up at start
    for _ in range(100):  # the loop puts rp_filter back and counts it (poll, not a timing check)
        text = metrics()
        if (
            'tke_eni_agent_pool_ips{phase="in_use"} 1.0' in text
            and sh("sysctl", "-n", "net.ipv4.conf.all.rp_filter", ns=node.ns).stdout.strip() == "0"
        ):
            break
        sh("sleep", "0.2")
    assert 'tke_eni_agent_pool_ips{phase="in_use"} 1.0' in text
    assert 'tke_eni_agent_pool_ips{phase="total"} 2.0' in text
    assert 'tke_eni_agent_drift_corrections_total{kind="sysctl"}' in text
    # graceful stop: SIGTERM, exit 0, socket removed
    agent.kill(15)
    assert agent.proc is not None and agent.proc.returncode == 0, agent.logs()
    assert not os.path.exists(agent.socket)
