"""Per-node warm targets on the local run (issue 16 item 2), through the real kubectl:

ipamd runs with the global --min-prebind/--max-prebind (5/5, deploy/'s defaults) and
a 20 s trim interval (the guide environment). Annotating node-a's NodeENIConfig with
min = max = 7 grows node-a's free dynamic IPs to 7 while node-b and node-c keep 5
and their nec's say ``global``; ``kubectl get nec`` shows the columns. A bad value
(min above max) is refused with a Warning event on the nec and node-a keeps 7.
Removing the annotations brings node-a back to 5 (trimmed, one per interval).
Every wait is bounded; no timing is asserted. The free counts are waited for, never
read once: earlier tests of the same local run leave IPs cooling down (150 s) that
come back Free and are trimmed one per interval, so a node's count moves for minutes
before it settles on its target."""

from __future__ import annotations

import pytest

from localrun.environment import Environment
from localrun.kube import wait_for

pytestmark = pytest.mark.e2e
MIN = "tke.cloud.tencent.com/route-eni-ip-min-warm-target"
MAX = "tke.cloud.tencent.com/route-eni-ip-max-warm-target"
NEC = "/apis/networking.tke.cloud.tencent.com/v1/nodeeniconfigs/"
REAL = ("node-a", "node-b", "node-c")
# Bounds: a cooldown (150 s) plus a dozen trims of 20 s after the previous test's pods.
SETTLE = 600


def _free(env: Environment, node: str) -> int:
    """The node's free dynamic IPs: assigned, not claimed, reserved or marked, and not
    in use or cooling down by the agent's account."""
    n = 0
    for o in env.kube.custom("vpcips", selector=f"tke.cloud.tencent.com/node={node}"):
        spec, status = o["spec"], o.get("status") or {}
        if spec.get("nodeName") != node or spec.get("state", "Assigned") != "Assigned":
            continue
        if spec.get("claim") or spec.get("reservedPodUid") or spec.get("unclaimedPodUid"):
            continue
        if status.get("phase", "Free") == "Free":
            n += 1
    return n


def _status(env: Environment, node: str) -> tuple[int, int, str] | None:
    obj = env.kube.get(NEC + node) or {}
    st = obj.get("status") or {}
    if "minWarmTarget" not in st:
        return None
    return int(st["minWarmTarget"]), int(st["maxWarmTarget"]), str(st.get("source", ""))


def _state(env: Environment) -> str:
    return "; ".join(f"{n}: free {_free(env, n)}, nec {_status(env, n)}" for n in REAL)


def test_warm_targets_change_live_on_one_node_only(guide_env: Environment) -> None:
    env = guide_env
    def on(node: str, lo: int, hi: int, source: str, free: int) -> bool:
        return _status(env, node) == (lo, hi, source) and _free(env, node) == free

    for node in REAL:
        wait_for(f"{node}'s nec on the global targets with 5 free IPs",
                 lambda: on(node, 5, 5, "global", 5), SETTLE,  # noqa: B023 - called at once
                 detail=lambda: _state(env))
    env.kubectl("annotate", "nec", "node-a", f"{MIN}=7", f"{MAX}=7")
    try:
        wait_for("node-a on 7/7 from its annotations with 7 free IPs",
                 lambda: on("node-a", 7, 7, "annotation", 7), SETTLE, detail=lambda: _state(env))
        for node in ("node-b", "node-c"):
            assert _status(env, node) == (5, 5, "global"), _state(env)
            wait_for(f"{node} still on the global targets with 5 free IPs",
                     lambda: on(node, 5, 5, "global", 5), SETTLE,  # noqa: B023 - called at once
                     detail=lambda: _state(env))
        out = env.kubectl("get", "nec")
        head, *rows = out.splitlines()
        assert head.split()[:5] == ["NAME", "NODE", "MIN-WARM", "MAX-WARM", "SOURCE"], out
        cells = {r.split()[0]: r.split()[1:5] for r in rows}
        assert cells["node-a"] == ["node-a", "7", "7", "annotation"], out
        assert cells["node-b"] == ["node-b", "5", "5", "global"], out

        # a bad value: refused, node-a keeps 7/7
        env.kubectl("annotate", "--overwrite", "nec", "node-a", f"{MIN}=9")
        wait_for("a Warning InvalidWarmTarget on nec node-a",
                 lambda: [e for e in env.kube.events("default", "NodeENIConfig", "node-a")
                          if e.get("reason") == "InvalidWarmTarget"
                          and "min warm target 9 exceeds max warm target 7" in e["message"]],
                 60)
        assert _status(env, "node-a") == (7, 7, "annotation"), _state(env)
        wait_for("node-a still on 7/7 with 7 free IPs",
                 lambda: on("node-a", 7, 7, "annotation", 7), SETTLE, detail=lambda: _state(env))
    finally:
        env.kubectl("annotate", "nec", "node-a", f"{MIN}-", f"{MAX}-")
    wait_for("node-a back on the global targets with 5 free IPs (trimmed)",
             lambda: on("node-a", 5, 5, "global", 5), SETTLE, detail=lambda: _state(env))
    for node in ("node-b", "node-c"):
        assert _status(env, node) == (5, 5, "global"), _state(env)
