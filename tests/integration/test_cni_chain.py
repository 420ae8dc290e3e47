"""tke-route-eni first in a chain with Debian's portmap and bandwidth, run like
libcni runs a conflist; and pods that do not ask for an ENI IP delegated to
Debian's bridge + host-local (Global Router mode)."""

from __future__ import annotations

import json

from tests.fixtures_netns import DEBIAN_CNI, AgentFactory, NetnsSet, Runtime, Vpc, run_plugin, sh

ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"


def test_chain_with_portmap_and_bandwidth(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101"]])
    agent = agents(node)
    installed = json.loads((agent.conf_dir / "10-tke-route-eni.conflist").read_text())
    assert installed["plugins"][0]["type"] == "tke-route-eni"
    assert [p["type"] for p in installed["plugins"][1:]] == ["portmap"]
    conflist = {
        "cniVersion": "1.0.0",
        "name": "tke-route-eni",
        "plugins": [
            installed["plugins"][0],
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
    }
    runtime = Runtime(conflist, f"{agent.bin_dir}:{DEBIAN_CNI}", caller_ns=node.ns)
    rc = {
        "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {
            "ingressRate": 1000000,
            "ingressBurst": 100000,
            "egressRate": 1000000,
            "egressBurst": 100000,
        },
    }
    pod = netns_set.add("pm")
    netns = f"/run/netns/{pod}"
    result = runtime.add("c-pm", netns, ARGS.format(name="pm"), rc)
    assert result["ips"][0]["address"] == "10.10.0.100/32"
    # portmap wrote its DNAT for our pod IP, bandwidth shaped our host veth
    nat = sh("iptables", "-t", "nat", "-S", ns=node.ns).stdout
    assert "10.10.0.100:80" in nat and "18080" in nat, nat
    veth = result["interfaces"][0]["name"]
    assert "tbf" in sh("tc", "qdisc", "show", "dev", veth, ns=node.ns).stdout
    sh("ping", "-c1", "-W5", node.ip, ns=pod)

    checks = runtime.check("c-pm", netns, result, ARGS.format(name="pm"), rc)
    # ours and bandwidth pass; Debian's portmap 1.1.1 fails its own CHECK on an
    # IPv4-only pod ("could not check ipv6 dnat"), a bug of that plugin
    assert checks[0].rc == 0 and checks[2].rc == 0, [c.stdout for c in checks]
    assert checks[1].rc == 0 or "ipv6" in checks[1].stdout, checks[1].stdout
    for _ in range(2):
        dels = runtime.delete("c-pm", netns, result, ARGS.format(name="pm"), rc)
        assert all(c.rc == 0 for c in dels), [c.stdout for c in dels]
    assert "10.10.0.100:80" not in sh("iptables", "-t", "nat", "-S", ns=node.ns).stdout
    agent.settled(lambda c: c["allocations"] == [])


def test_unannotated_pod_is_delegated(vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    delegates = [
        {
            "type": "bridge",
            "bridge": "cbr0",
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "172.30.0.0/24"}]],
                "dataDir": "",
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }
    ]
    agent = agents(node, start=False, eni_only=False)
    delegates[0]["ipam"]["dataDir"] = str(agent.workdir / "host-local")  # type: ignore[index]
    (agent.workdir / "delegates.json").write_text(json.dumps(delegates))
    agent.pod_file.write_text(
        json.dumps(
            {
                "default/eni": {
                    "uid": "u1",
                    "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"},
                },
                "default/plain": {"uid": "u2", "annotations": {}},
            }
        )
    )
    agent.start("--delegate-file", str(agent.workdir / "delegates.json"))
    conflist = json.loads((agent.conf_dir / "10-tke-route-eni.conflist").read_text())
    ours = dict(conflist["plugins"][0], cniVersion="1.0.0", name=conflist["name"])
    assert ours["delegatePlugins"][0]["type"] == "bridge"

    def call(cmd: str, name: str, pod: str, prev: dict | None = None):  # type: ignore[no-untyped-def, type-arg]
        conf = dict(ours, prevResult=prev) if prev else ours
        return run_plugin(
            agent.plugin,
            cmd,
            conf,
            container_id=f"c-{name}",
            netns=f"/run/netns/{pod}",
            args=ARGS.format(name=name),
            caller_ns=node.ns,
        )

    eni_pod, plain_pod = netns_set.add("eni"), netns_set.add("plain")
    eni = call("ADD", "eni", eni_pod)
    plain = call("ADD", "plain", plain_pod)
    assert eni.rc == 0 and eni.out and eni.out["ips"][0]["address"] == "10.10.0.100/32", eni.stdout
    assert plain.rc == 0 and plain.out, plain.stdout
    assert plain.out["ips"][0]["address"].startswith("172.30.0."), plain.out
    assert "cbr0" in sh("ip", "link", ns=node.ns).stdout
    sh("ping", "-c1", "-W5", "172.30.0.1", ns=plain_pod)
    assert call("CHECK", "plain", plain_pod, plain.out).rc == 0
    for _ in range(2):
        assert call("DEL", "plain", plain_pod, plain.out).rc == 0
        assert call("DEL", "eni", eni_pod, eni.out).rc == 0
    agent.settled(lambda c: c["allocations"] == [])
