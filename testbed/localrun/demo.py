"""The local demonstration (``tke-localcluster demo``): the guide's workloads on the
environment, shown the way a user would look at them."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from localrun.environment import ENI_IP, IPAMD, ZONE_LABEL, Environment
from localrun.kube import Kube
from localrun.manifests import examples
from localrun.pods import plain_pod, running_pod, running_pods, with_replicas

NGINX_REPLICAS = 3  # the guide's Deployment says 1; three show the pods spread over nodes


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def nodes_table(kube: Kube, real: set[str]) -> str:
    rows = []
    for n in kube.items("/api/v1/nodes"):
        st, labels = n["status"], n["metadata"]["labels"]
        ready = next((c["status"] for c in st.get("conditions", []) if c["type"] == "Ready"), "?")
        rows.append((n["metadata"]["name"], "real (kubelet)" if n["metadata"]["name"] in real
                     else "kwok", labels.get(ZONE_LABEL, "-"),
                     (n["spec"].get("providerID") or labels.get(
                         "tke.cloud.tencent.com/instance-id", "-")).rsplit("/", 1)[-1],
                     "True" if ready == "True" else ready,
                     f"{st.get('capacity', {}).get(ENI_IP, '-')}/"
                     f"{st.get('allocatable', {}).get(ENI_IP, '-')}"))
    return table(rows, ("NODE", "KIND", "ZONE", "INSTANCE", "READY", "ENI-IP CAP/ALLOC"))


def subnet_of(ip: str, subnets: Mapping[str, Mapping[str, Any]]) -> str:
    for sid, s in subnets.items():
        if ipaddress.ip_address(ip) in ipaddress.ip_network(s["cidr"]):
            return f"VPC {sid} ({s['zone']})"
    return "default network (bridge + host-local)"


def pods_table(kube: Kube, subnets: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for p in sorted(kube.pods(), key=lambda p: p["metadata"]["name"]):
        ip = p["status"].get("podIP") or "-"
        rows.append((p["metadata"]["name"], p["status"].get("phase"), p["spec"].get("nodeName"),
                     ip, subnet_of(ip, subnets) if ip != "-" else "-"))
    return table(rows, ("POD", "STATUS", "NODE", "IP", "FROM"))


def enis_table(kube: Kube) -> str:
    rows = []
    for e in sorted(kube.custom("vpcenis"), key=lambda e: e["spec"].get("nodeName", "")):
        st = e.get("status") or {}
        rows.append((e["metadata"]["name"], e["spec"].get("nodeName"), e["spec"].get("subnetId"),
                     st.get("mac"), st.get("primaryIp"), st.get("phase")))
    return table(rows, ("VENI", "NODE", "SUBNET", "MAC", "PRIMARY IP", "PHASE"))


def vips_table(kube: Kube) -> str:
    counts: dict[tuple[str, str], int] = {}
    used = []
    for v in kube.custom("vpcips"):
        spec, st = v["spec"], v.get("status") or {}
        phase = st.get("phase") or "(not reported)"
        key = (spec.get("nodeName", "-"), phase)
        counts[key] = counts.get(key, 0) + 1
        if phase == "InUse" or spec.get("claim"):
            used.append((v["metadata"]["name"], spec.get("nodeName"), spec.get("eniId"), phase,
                         f"{st.get('podNamespace', '')}/{st.get('podName', '')}".strip("/"),
                         spec.get("claim") or "-"))
    summary = table(sorted((n, p, c) for (n, p), c in counts.items()), ("NODE", "PHASE", "VPCIPS"))
    return summary + "\n\n" + table(sorted(used), ("VIP", "NODE", "ENI", "PHASE", "POD", "CLAIM"))


def kubectl_exec(env: Environment, pod: Mapping[str, Any], cmd: list[str]) -> tuple[bool, str]:
    """``kubectl exec`` in the pod's container: (exit 0?, output)."""
    meta = pod["metadata"]
    code, out = env.kubectl_run("-n", meta["namespace"], "exec", meta["name"], "--", *cmd,
                                timeout=30)
    return code == 0, out


def run(env: Environment, say: Callable[[str], None] = print) -> dict[str, Any]:  # noqa: PLR0915
    """The guide's Deployment and StatefulSet, then what a user wants to see. Returns the
    facts it showed (for tests)."""
    kube = env.kube
    assert env.emulator is not None
    subnets = {s["subnet_id"]: s for s in env.emulator.state()["subnets"]}
    ex = examples()
    facts: dict[str, Any] = {}
    with env.phases.phase("demo: the guide's nginx Deployment + busybox StatefulSet running"):
        kube.apply(with_replicas(ex["nginx"], NGINX_REPLICAS))
        kube.apply(ex["busybox-svc"])
        kube.apply(ex["busybox"])
        nginx = running_pods(kube, "app=nginx", NGINX_REPLICAS)
        busybox = running_pod(kube, "busybox-0")

    say("\n=== Nodes (zone, eni-ip from our device plugin through the kubelet) ===")
    say(nodes_table(kube, set(env.real)))
    say("\n=== Our components: pods of deploy/ from the tke-vpc-cni image "
        "(kubectl -n kube-system get pods -o wide) ===")
    listing = env.kubectl("-n", "kube-system", "get", "pods", "-o", "wide")
    say("  " + "\n  ".join(line.rstrip() for line in listing.strip().splitlines()))
    facts["components"] = listing
    say(f"\n=== Pods (nginx: the guide's Deployment, {NGINX_REPLICAS} replicas; busybox: the "
        "guide's StatefulSet, apps/v1) ===")
    say(pods_table(kube, subnets))
    say("\n=== ENIs ipamd attached (kubectl get veni) ===")
    say(enis_table(kube))
    say("\n=== VPC IPs ipamd holds (kubectl get vip) ===")
    say(vips_table(kube))

    with env.phases.phase("demo: cross-node ping + HTTP between pods"):
        src = busybox
        others = [p for p in nginx if p["spec"]["nodeName"] != src["spec"]["nodeName"]]
        if not others:  # every nginx landed beside busybox-0: ping from another node
            other = next(n for n in env.real if n != src["spec"]["nodeName"])
            kube.request("/api/v1/namespaces/default/pods", "POST",
                         plain_pod("pinger", node_name=other, eni=True))
            src = running_pod(kube, "pinger")
            others = [nginx[0]]
        dst = others[0]
        # kubectl exec: apiserver -> (egress proxy) -> the kubelet -> the container
        ok, out = kubectl_exec(env, src, ["ping", "-c", "2", "-W", "2", dst["status"]["podIP"]])
        http_ok, page = kubectl_exec(env, src, ["wget", "-q", "-O", "-",
                                                f"http://{dst['status']['podIP']}/"])
        code = 0 if http_ok else 1
    say(f"\n=== Cross-node: {src['metadata']['name']} ({src['status']['podIP']} on "
        f"{src['spec']['nodeName']}) -> {dst['metadata']['name']} ({dst['status']['podIP']} on "
        f"{dst['spec']['nodeName']}) through both ENIs and the VPC fabric ===")
    say("  " + "\n  ".join(out.strip().splitlines()[-3:]))
    say(f"  HTTP: {'Welcome to nginx!' if 'Welcome to nginx!' in page else page.strip()[:80]}"
        f" (exit {code})")
    facts["ping_ok"], facts["http_ok"] = ok, code == 0 and "Welcome to nginx!" in page

    with env.phases.phase("demo: busybox-0 deleted and back with the same IP"):
        before = busybox["status"]["podIP"]
        kube.delete("/api/v1/namespaces/default/pods/busybox-0")
        again = running_pod(kube, "busybox-0", uid_not=busybox["metadata"]["uid"])
    after = again["status"]["podIP"]
    claim = kube.get("/apis/networking.tke.cloud.tencent.com/v1/namespaces/default/"
                     "vpcipclaims/busybox-0") or {}
    say("\n=== Static IP (vpc-ip-claim-delete-policy: Never) ===")
    say(f"  busybox-0 before delete: {before} on {busybox['spec']['nodeName']}")
    say(f"  busybox-0 recreated:     {after} on {again['spec']['nodeName']} "
        f"({'SAME IP' if after == before else 'DIFFERENT IP'})")
    st = claim.get("status") or {}
    say(f"  VpcIPClaim default/busybox-0: ip {st.get('ip')} subnet {st.get('subnetId')} "
        f"zone {st.get('zone')} phase {st.get('phase')}")
    facts.update(static_before=before, static_after=after)
    ipamd = kube.get(f"/apis/apps/v1/namespaces/kube-system/deployments/{IPAMD}") or {}
    args = ipamd.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
    say(f"  (ipamd runs with {' '.join(args.get('args', []))}: the IP is kept that long "
        "after the pod is gone)")
    return facts
