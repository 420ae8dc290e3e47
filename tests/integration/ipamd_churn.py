"""Support for the ipamd churn suite (test_ipamd_faults.py): the fault mixes
(cloud: the emulator's knobs; apiserver: the fault proxy's rules, for ipamd's
own traffic), a ledger of what the agents handed out, and the invariants.

Invariants, checked after every step (``step_violations``):

* no IP held by two pods (ledger: one holder per IP, checked as each IP is
  handed out; records: no pod UID in use on two VpcIPs);
* no running pod whose IP was moved away: each IP of the ledger is still, in
  the cloud, on an ENI attached to its pod's node, and its VpcIP still names
  that node;
* every claim's IP is still its own: in the cloud on one of our ENIs, not named
  by another claim, and its VpcIP (when present: a move re-creates it) carries
  the claim;

and in the kernel (``netns_violations``: the agent stand-in binds each running
pod's address in a network namespace of its own, tests/integration/podnetns.py):

* no address in two running pods' namespaces;
* each running pod's namespace holds exactly its recorded IP (the ledger's),
  and no namespace is left of a pod that is gone.

and once the cluster has settled (``settled_violations``, faults paused):

* no leak either way: every secondary IP/ENI of our cluster in the cloud has its
  VpcIP/VpcENI and the other way round, on the same ENI/instance;
* a claim holds one IP: no VpcIP carries a claim other than at its status IP.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from core import models as m
from core import names
from harness.ipamd_world import CLUSTER
from ipamd.kube import paths
from localcluster.apifaults import FaultRule, rule
from tests.integration.ipamd_harness import Kube
from tests.integration.podnetns import PodNetns
from vpcsim.testing import EmulatorHandle

CRDS = "vpcips,vpcips/status,vpcenis,vpcenis/status,vpcipclaims,vpcipclaims/status"
WRITES = "create,update,patch,delete"

#: cloud faults (distinct ratios: ``CloudFaultCounter`` tells them apart by value)
CLOUD_FAULTS: dict[str, float] = {
    "throttle_ratio": 0.15,
    "task_fail_ratio": 0.05,
    "lost_reply_ratio": 0.03,
    "error_5xx_ratio": 0.02,
}


def api_fault_rules(scale: float = 1.0) -> tuple[FaultRule, ...]:
    """What ipamd's apiserver traffic suffers (rates times ``scale``)."""
    return (
        rule("error", 0.08 * scale, verbs=WRITES, resources=CRDS, status=500),
        rule("reply-lost", 0.05 * scale, verbs=WRITES, resources=CRDS),
        rule("error-after-write", 0.04 * scale, verbs="create,patch", resources=CRDS, status=504),
        rule("error", 0.05 * scale, verbs="get,list", status=429),
        rule("timeout", 0.02 * scale, verbs="get,list,create,patch", delay=0.5),
        rule("error", 0.08 * scale, verbs="watch", status=500, name="watch-500"),
        rule("error", 0.05 * scale, verbs="update", resources="leases", name="lease-500"),
        rule("slow", 0.03 * scale, delay=0.3),
    )


class CloudFaultCounter:
    """Counts the emulator's fault rolls that hit, by knob (wraps ``Faults.roll``
    of the in-process emulator; the ratios in use must be distinct)."""

    def __init__(self, emu: EmulatorHandle) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        faults = emu.emulator.faults
        inner = faults.roll

        def roll(ratio: float, action: str, rng: Any) -> bool:
            hit = inner(ratio, action, rng)
            if hit:
                kind = next(
                    (k for k in CLOUD_FAULTS if getattr(faults, k) == ratio), f"ratio-{ratio}"
                )
                with self._lock:
                    self.counts[kind.removesuffix("_ratio")] += 1
            return hit

        faults.roll = roll  # type: ignore[method-assign]


@dataclass
class Running:
    """A pod the agent stand-in gave an IP to, still running on ``node``."""

    name: str
    uid: str
    node: str
    claim: str = ""  # "default/web-0" for a static pod


class Ledger:
    """What the agents handed out: IP -> the running pod holding it."""

    def __init__(self) -> None:
        self.by_ip: dict[str, Running] = {}

    def add(self, ip: str, pod: Running, step: str) -> None:
        held = self.by_ip.get(ip)
        assert held is None, (
            f"{step}: {ip} handed to {pod.name} ({pod.uid}) on {pod.node} while "
            f"{held.name} ({held.uid}) on {held.node} still runs with it"
        )
        self.by_ip[ip] = pod

    def remove(self, ip: str) -> Running:
        return self.by_ip.pop(ip)

    def on(self, node: str) -> dict[str, Running]:
        return {ip: r for ip, r in self.by_ip.items() if r.node == node}


def _cloud(emu: EmulatorHandle) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(secondary IP -> ENI id, ENI id -> ENI) for our cluster's ENIs."""
    ips: dict[str, str] = {}
    enis: dict[str, dict[str, Any]] = {}
    for e in emu.state()["enis"]:
        if e["primary"] or e["tags"].get(names.TAG_CLUSTER_ID) != CLUSTER:
            continue
        enis[e["eni_id"]] = e
        for ip in e.get("ips") or e.get("private_ips") or []:
            addr = ip.get("address") or ip.get("PrivateIpAddress")
            if not (ip.get("primary") or ip.get("Primary")):
                ips[addr] = e["eni_id"]
    return ips, enis


def step_violations(
    kube: Kube, emu: EmulatorHandle, ledger: Ledger, instances: dict[str, str]
) -> list[str]:
    out: list[str] = []
    in_cloud, enis = _cloud(emu)
    vips = {o["metadata"]["name"]: o for o in kube.vpcips()}
    claims = kube.api.get(paths.CLAIMS).get("items", [])
    # one pod, one IP (records)
    by_uid: dict[str, list[str]] = defaultdict(list)
    for ip, o in vips.items():
        st = o.get("status") or {}
        if st.get("phase") == m.IP_PHASE_IN_USE and st.get("podUid"):
            by_uid[st["podUid"]].append(ip)
    out += [f"pod {uid} is in use on {ips}" for uid, ips in by_uid.items() if len(ips) > 1]
    # running pods keep their IP on their node
    for ip, r in ledger.by_ip.items():
        eni = in_cloud.get(ip)
        where = f"running pod {r.name} ({r.uid[:8]}) on {r.node}: IP {ip}"
        if eni is None:
            out.append(f"{where} is no longer ours in the cloud")
        elif enis[eni]["instance_id"] != instances[r.node]:
            out.append(f"{where} moved to {eni} on {enis[eni]['instance_id'] or 'no instance'}")
        o = vips.get(ip)
        if o is None:
            out.append(f"{where} has no VpcIP")
        elif o["spec"].get("nodeName") != r.node:
            out.append(f"{where}: its VpcIP names node {o['spec'].get('nodeName')}")
        elif (o["spec"].get("claim") or "") != r.claim and r.claim:
            out.append(f"{where}: its VpcIP carries claim {o['spec'].get('claim')!r}")
    # every claim's IP is still its own
    named: dict[str, str] = {}
    for c in claims:
        key = f"{c['metadata']['namespace']}/{c['metadata']['name']}"
        ip = (c.get("status") or {}).get("ip")
        if not ip:
            continue
        if ip in named:
            out.append(f"claims {named[ip]} and {key} both name {ip}")
        named[ip] = key
        if ip not in in_cloud:
            out.append(f"claim {key}: IP {ip} is not on any ENI of ours in the cloud")
        o = vips.get(ip)
        if o is not None and (o["spec"].get("claim") or "") != key:
            out.append(f"claim {key}: VpcIP {ip} carries claim {o['spec'].get('claim')!r}")
    return out


def netns_violations(ledger: Ledger, netns: PodNetns) -> list[str]:
    """The invariants as the kernel shows them (``ip -n NS -j addr``)."""
    out: list[str] = []
    seen = netns.addresses()  # pod UID -> (namespace, its addresses)
    holders: dict[str, list[str]] = defaultdict(list)
    for uid, (ns, addrs) in seen.items():
        for a in addrs:
            holders[a].append(f"{ns} (pod {uid[:8]})")
    out += [f"address {a} is in two pods' netns: {h}" for a, h in holders.items() if len(h) > 1]
    running = {r.uid: (ip, r) for ip, r in ledger.by_ip.items()}
    for uid, (ip, r) in running.items():
        got = seen.get(uid)
        where = f"running pod {r.name} ({uid[:8]}) on {r.node}"
        if got is None:
            out.append(f"{where}: no netns")
        elif got[1] != {ip}:
            out.append(f"{where}: netns {got[0]} holds {sorted(got[1])}, recorded IP {ip}")
    out += [
        f"netns {ns} of pod {uid[:8]} is left, the pod is gone"
        for uid, (ns, _) in seen.items()
        if uid not in running
    ]
    return out


def settled_violations(kube: Kube, emu: EmulatorHandle) -> list[str]:
    out: list[str] = []
    in_cloud, enis = _cloud(emu)
    vips = {o["metadata"]["name"]: o for o in kube.vpcips()}
    venis = {o["metadata"]["name"]: o for o in kube.vpcenis()}
    out += [f"leaked ENI {e} (no VpcENI)" for e in enis if e not in venis]
    for eni_id, veni in venis.items():
        phase = (veni.get("status") or {}).get("phase")
        if eni_id not in enis:
            out.append(f"VpcENI {eni_id} without ENI")
        elif phase != m.ENI_PHASE_ATTACHED or enis[eni_id]["instance_id"] != veni["spec"].get(
            "instanceId"
        ):
            out.append(
                f"VpcENI {eni_id} is {phase}, cloud: attached to {enis[eni_id]['instance_id']}"
            )
    out += [f"leaked IP {ip} on {e} (no VpcIP)" for ip, e in in_cloud.items() if ip not in vips]
    for ip, o in vips.items():
        if in_cloud.get(ip) != o["spec"]["eniId"]:
            out.append(f"VpcIP {ip} says {o['spec']['eniId']}, cloud says {in_cloud.get(ip)}")
    status_ip = {
        f"{c['metadata']['namespace']}/{c['metadata']['name']}": (c.get("status") or {}).get("ip")
        for c in kube.api.get(paths.CLAIMS).get("items", [])
    }
    carried: dict[str, list[str]] = defaultdict(list)
    for ip, o in vips.items():
        if o["spec"].get("claim"):
            carried[o["spec"]["claim"]].append(ip)
    for key, ips in carried.items():
        if key not in status_ip:
            out.append(f"VpcIPs {ips} carry claim {key}, which does not exist")
        elif ips != [status_ip[key]]:
            out.append(f"claim {key} (status IP {status_ip[key]}) is carried by VpcIPs {ips}")
    return out


def waits_for_old_pod(kube: Kube, name: str, uid: str, ip: str) -> bool:
    """ipamd recorded that pod ``name`` (now the new pod ``uid``) waits because
    the old pod still uses ``ip``: the claim's ``status.message`` (written with
    the decision, cleared by the claim's next status write; the WaitingForIP
    Event says the same but is best effort and may be lost), and the record of
    ``ip`` still shows the old pod using it."""
    claim = kube.claim(name)
    msg = ((claim or {}).get("status") or {}).get("message") or ""
    if "still uses" not in msg or not msg.endswith(f" {ip}"):
        return False
    pod = kube.api.get_or_none(paths.pod("default", name))
    if pod is None or pod["metadata"]["uid"] != uid:
        return False
    rec = next((o for o in kube.vpcips() if o["metadata"]["name"] == ip), None)
    st = (rec or {}).get("status") or {}
    return st.get("phase") == m.IP_PHASE_IN_USE and st.get("podUid") not in ("", None, uid)
