"""Security groups made physical: the emulator's groups and their ingress rules,
enforced on the traffic the VPC fabric forwards into each plugged ENI.

The fabric routes a pod's address out of the ENI's link (``eni-xxxxxxxx``, see
``localrun.plumber``), so "ingress to the ENI" is "forwarded out of that
link". ``render`` (pure) turns the emulator's state into one nftables table
``inet tke_sg``: connections already accepted (and their related ICMP) pass
both ways (security groups are stateful); then, per ENI holding groups, its
groups' ingress rules in order (the first group first, each group's rules in
their order; the first match decides) and a final drop; an ENI without any
group allows all. ``SgFabric.apply`` replaces the table atomically with one
``nft -f`` (delete and define in one transaction) when the rendering changed.
Egress rules are not enforced (the local run's tests need only ingress)."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localnode.proc import ProcessError, ns_argv

log = logging.getLogger("localrun.sgfabric")

TABLE = "tke_sg"
FAMILY = "inet"
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "ICMP": "icmp"}


def _chain(eni_id: str) -> str:
    return "eni_" + eni_id.removeprefix("eni-")


def _ports(port: str) -> str:
    """``80`` → ``80``; ``80,443`` → ``{ 80, 443 }``; ``8000-8080`` → ``8000-8080``."""
    parts = [p.strip() for p in port.split(",")]
    return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"


def rule_line(rule: Mapping[str, Any]) -> str:
    """One security-group rule (the emulator's dump of a policy) as an nft rule."""
    protocol = str(rule["protocol"]).upper()
    port = str(rule.get("port") or "ALL").upper()
    verdict = "accept" if str(rule["action"]).upper() == "ACCEPT" else "drop"
    parts: list[str] = []
    if rule["cidr"] != "0.0.0.0/0":
        parts.append(f"ip saddr {rule['cidr']}")
    if protocol in ("TCP", "UDP"):
        l4 = PROTOCOLS[protocol]
        parts.append(f"{l4} dport {_ports(port)}" if port != "ALL" else f"meta l4proto {l4}")
    elif protocol == "ICMP":
        parts.append("meta l4proto icmp")
    elif protocol != "ALL":
        raise ValueError(f"security group rule with protocol {protocol!r}")
    parts.append(verdict)
    return " ".join(parts)


def render(state: Mapping[str, Any], eni_ids: Iterable[str]) -> str:
    """The nft script (a whole-table replace) for the plugged ENIs ``eni_ids``. Pure."""
    groups = {g["sg_id"]: g for g in state.get("security_groups", [])}
    enis = {e["eni_id"]: e for e in state.get("enis", [])}
    chains: list[str] = []
    dispatch: list[str] = []
    for eni_id in sorted(set(eni_ids)):
        eni = enis.get(eni_id)
        held = list(eni.get("security_groups") or []) if eni else []
        if not held:
            continue  # no group: all allowed
        lines = [f"    # {eni_id}: {', '.join(held)}"]
        for sg_id in held:
            for rule in (groups.get(sg_id) or {}).get("ingress", []):
                lines.append(f"    {rule_line(rule)}  # {sg_id}")
        lines.append("    drop")
        chains.append(f"  chain {_chain(eni_id)} {{\n" + "\n".join(lines) + "\n  }")
        dispatch.append(f'"{eni_id}" : jump {_chain(eni_id)}')
    forward = [
        "    type filter hook forward priority 0; policy accept;",
        "    ct state established,related accept",
    ]
    if dispatch:
        forward.append("    oifname vmap { " + ", ".join(dispatch) + " }")
    body = "\n".join([*chains, "  chain forward {\n" + "\n".join(forward) + "\n  }"])
    return (
        f"table {FAMILY} {TABLE} {{}}\n"
        f"delete table {FAMILY} {TABLE}\n"
        f"table {FAMILY} {TABLE} {{\n{body}\n}}\n"
    )


@dataclass
class SgFabric:
    """Keeps the fabric's ``inet tke_sg`` table equal to ``render`` of the state."""

    fabric: str
    applied_digest: str = ""
    applies: int = 0
    last_script: str = field(default="", repr=False)

    def apply(self, state: Mapping[str, Any], eni_ids: Iterable[str]) -> bool:
        """Replace the table when the rendering changed; True if it did."""
        script = render(state, eni_ids)
        digest = hashlib.sha256(script.encode()).hexdigest()
        if digest == self.applied_digest:
            return False
        argv = ns_argv(["nft", "-f", "-"], netns=self.fabric)
        try:
            r = subprocess.run(
                argv, input=script, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProcessError(f"{' '.join(argv)}: {exc}") from exc
        if r.returncode != 0:
            raise ProcessError(f"nft -f in {self.fabric} exited {r.returncode}: {r.stderr.strip()}")
        self.applied_digest = digest
        self.last_script = script
        self.applies += 1
        log.info("security groups: table %s %s replaced (%d lines)", FAMILY, TABLE,
                 script.count("\n"))
        return True
