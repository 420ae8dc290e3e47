"""Pure: per-node warm targets from a NodeENIConfig's annotations, and how
many surplus IPs one trim pass may release.

A node's ``nec`` may carry ``route-eni-ip-min-warm-target`` and/or
``route-eni-ip-max-warm-target``; an absent one falls back to the global
``--min-prebind`` / ``--max-prebind``. A bad value (not a non-negative
integer, min > max, above what the node can hold) is a problem: the caller
reports it and keeps the targets it had."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ipamd.rules.pool import PoolTargets

KIND_NEC = "NodeENIConfig"
PLURAL_NEC = "nodeeniconfigs"
ANN_MIN_WARM = "tke.cloud.tencent.com/route-eni-ip-min-warm-target"
ANN_MAX_WARM = "tke.cloud.tencent.com/route-eni-ip-max-warm-target"
SOURCE_GLOBAL = "global"
SOURCE_ANNOTATION = "annotation"


@dataclass(frozen=True, slots=True)
class WarmTargets:
    targets: PoolTargets
    source: str  # SOURCE_GLOBAL or SOURCE_ANNOTATION


@dataclass(frozen=True, slots=True)
class Resolved:
    """``problem`` empty: ``value`` is the node's targets; otherwise ``value``
    is None and ``problem`` says what is wrong (for the event)."""

    value: WarmTargets | None
    problem: str = ""


def _parse(annotation: str, raw: str, limit: int) -> tuple[int | None, str]:
    text = raw.strip()
    if not text or not (text.isascii() and text.isdigit()):
        if text.startswith("-") and text[1:].isdigit():
            return None, f"{annotation}={raw!r} is negative: it must be 0 or more"
        return None, f"{annotation}={raw!r} is not an integer"
    v = int(text)
    if v > limit:
        return None, f"{annotation}={v} is above the node's limit of {limit} IPs"
    return v, ""


def resolve(
    annotations: Mapping[str, str] | None, defaults: PoolTargets, node_limit: int
) -> Resolved:
    """The node's warm targets. ``node_limit``: the most IPs the node can
    hold for pods (its max pods in shared-ENI mode)."""
    ann = annotations or {}
    raw_min = ann.get(ANN_MIN_WARM)
    raw_max = ann.get(ANN_MAX_WARM)
    if raw_min is None and raw_max is None:
        return Resolved(WarmTargets(defaults, SOURCE_GLOBAL))
    lo, hi = defaults.min_prebind, defaults.max_prebind
    problems: list[str] = []
    if raw_min is not None:
        v, why = _parse(ANN_MIN_WARM, raw_min, node_limit)
        if why:
            problems.append(why)
        elif v is not None:
            lo = v
    if raw_max is not None:
        v, why = _parse(ANN_MAX_WARM, raw_max, node_limit)
        if why:
            problems.append(why)
        elif v is not None:
            hi = v
    if not problems and lo > hi:
        problems.append(f"min warm target {lo} exceeds max warm target {hi}")
    if problems:
        return Resolved(None, "; ".join(problems))
    return Resolved(WarmTargets(PoolTargets(lo, hi), SOURCE_ANNOTATION))


def trim_count(surplus: int, quick: bool) -> int:
    """IPs one allowed trim pass releases: all the surplus (down to the max
    target) with quick release, else one."""
    if surplus <= 0:
        return 0
    return surplus if quick else 1


@dataclass(frozen=True, slots=True)
class NecRec:
    name: str
    uid: str
    annotations: tuple[tuple[str, str], ...]  # only the warm-target ones, sorted
    status: tuple[int, int, str, str] | None  # (min, max, source, message) as written


def nec_from_obj(obj: Mapping[str, object]) -> NecRec:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    ann = meta.get("annotations") or {}
    ours = tuple(
        sorted((str(k), str(v)) for k, v in ann.items() if k in (ANN_MIN_WARM, ANN_MAX_WARM))
    )
    st = obj.get("status")
    status: tuple[int, int, str, str] | None = None
    if isinstance(st, dict) and "minWarmTarget" in st:
        status = (
            int(st.get("minWarmTarget") or 0),
            int(st.get("maxWarmTarget") or 0),
            str(st.get("source") or ""),
            str(st.get("message") or ""),
        )
    return NecRec(str(meta.get("name", "")), str(meta.get("uid") or ""), ours, status)


def from_status(status: tuple[int, int, str, str] | None) -> WarmTargets | None:
    """The targets a nec's status says were in force (after an ipamd restart,
    the "previous" targets a bad annotation keeps); None if it says nothing usable."""
    if status is None:
        return None
    lo, hi, source, _ = status
    if source not in (SOURCE_GLOBAL, SOURCE_ANNOTATION) or not 0 <= lo <= hi:
        return None
    return WarmTargets(PoolTargets(lo, hi), source)
