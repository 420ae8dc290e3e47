"""The invariants checked after faults (DESIGN.md "Fault and bad-input suites"): the cloud
and the CRDs agree (no leaked ENI or IP either way), no IP is used by two pods, every
running ENI pod's IP is recorded as in use by it. Pure functions over the emulator's state
dump and the API's lists; each returns the problems found (empty = holds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

NETWORKS_ANNOTATION = "tke.cloud.tencent.com/networks"


def cloud_vs_crds(state: Mapping[str, Any], vpcenis: Iterable[Mapping[str, Any]],
                  vpcips: Iterable[Mapping[str, Any]], cluster_id: str) -> list[str]:
    """Secondary ENIs tagged with ``cluster_id`` vs VpcENI; their secondary IPs vs VpcIP."""
    ours = {e["eni_id"]: e for e in state.get("enis", [])
            if not e.get("primary") and (e.get("tags") or {}).get("tke-eni-cluster-id")
            == cluster_id}
    recorded = {e["metadata"]["name"]: e for e in vpcenis}
    problems = [f"leaked ENI {eid} (no VpcENI; instance {e.get('instance_id')})"
                for eid, e in sorted(ours.items()) if eid not in recorded]
    problems += [f"VpcENI {name} has no ENI in the cloud" for name in sorted(recorded)
                 if name not in ours]
    cloud_ips = {ip["address"]: eid for eid, e in ours.items() for ip in e.get("ips", [])
                 if not ip.get("primary")}
    ips = {v["metadata"]["name"]: v for v in vpcips}
    problems += [f"leaked IP {addr} on {eid} (no VpcIP)" for addr, eid in sorted(cloud_ips.items())
                 if addr not in ips]
    for addr, v in sorted(ips.items()):
        eni = (v.get("spec") or {}).get("eniId")
        if cloud_ips.get(addr) != eni:
            problems.append(f"VpcIP {addr} says {eni}, the cloud has it on "
                            f"{cloud_ips.get(addr) or 'no ENI'}")
    return problems


def pods_vs_ips(pods: Iterable[Mapping[str, Any]],
                vpcips: Iterable[Mapping[str, Any]]) -> list[str]:
    """No IP used by two live pods; a running ENI pod's IP is InUse by that pod."""
    problems: list[str] = []
    by_ip: dict[str, str] = {}
    ips = {v["metadata"]["name"]: v for v in vpcips}
    for p in pods:
        meta, st = p["metadata"], p.get("status") or {}
        ip = st.get("podIP")
        if not ip or st.get("phase") != "Running" or meta.get("deletionTimestamp"):
            continue
        if (p.get("spec") or {}).get("hostNetwork"):
            continue
        who = f"{meta['namespace']}/{meta['name']}"
        if ip in by_ip:
            problems.append(f"IP {ip} used by {by_ip[ip]} and {who}")
        by_ip[ip] = who
        if (meta.get("annotations") or {}).get(NETWORKS_ANNOTATION) != "tke-route-eni":
            continue
        v = ips.get(ip)
        vst = (v or {}).get("status") or {}
        if v is None:
            problems.append(f"pod {who} runs with {ip}, which has no VpcIP")
        elif vst.get("phase") != "InUse" or vst.get("podName") != meta["name"]:
            problems.append(f"pod {who} runs with {ip}, VpcIP says phase "
                            f"{vst.get('phase')} pod {vst.get('podName')}")
    return problems
