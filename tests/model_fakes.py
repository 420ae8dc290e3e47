"""In-memory stand-ins at the level of our own wrappers, for the model-based
IPAM test (tests/unit/test_model_ipam.py):

* ``Store`` + ``FakeKube``: the surface of ``ipamd.kube.api.KubeApi``
  (get/list/create/replace/merge-patch/delete) over dicts, with the apiserver
  rules the controllers rely on: resourceVersions, 409 on create of an
  existing name and on a stale ``metadata.resourceVersion`` precondition,
  status subresources, finalizers + deletionTimestamp. A ``KubeFaultPlan``
  makes the n-th write fail before it is applied (HTTP 500), succeed and
  lose its reply (HTTP 0, "connection dropped"), or kill the process
  (``Crash``) before or after it is applied.
* ``FakeNet``: the surface of ``cni.agent.dataplane.netops.NetOps`` over a dict of host
  veths, rules and routes; ENI links exist when the emulator says the ENI is
  attached to the node's instance; netlink errors on demand.
* ``InProcessTransport``: ``cloud.sdk_transport.Transport`` that signs each
  request (``vpcsim.signature``) and hands it to the emulator's real request
  handler (``vpcsim.api.Api.handle``: auth, faults, idempotency,
  async tasks) without a socket; replies are mapped to ``CloudError`` as the
  SDK transport does."""

from __future__ import annotations

import copy
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from cloud.errors import CloudError
from cni.agent.cnitypes import PodAttachment
from cni.agent.dataplane.netops import EniLink
from cni.agent.dataplane.podnet import PRIO_FROM_POD, PRIO_TO_POD, veth_mac
from cni.agent.dataplane.rtnl import RT_TABLE_MAIN
from cni.agent.ipsource import EniInfo
from cni.agent.pods import PodInfo
from cni.agent.pool import Allocation
from ipamd.kube.api import JSON, KubeError
from vpcsim import signature
from vpcsim.api import VERSION
from vpcsim.server import Emulator

#: kinds whose status is a subresource (a main-resource write never sets it)
STATUS_SUBRESOURCE = {"vpcips", "vpcenis", "vpcipclaims", "pods", "nodes"}


@dataclass
class MemoryPodSource:
    """The agent's ``PodSource`` over a dict: the pods as kubelet sees them."""

    pods: dict[tuple[str, str], PodInfo] = field(default_factory=dict)

    def add(self, pod: PodInfo) -> None:
        self.pods[(pod.namespace, pod.name)] = pod

    def get(self, namespace: str, name: str, uid: str = "") -> PodInfo | None:
        return self.pods.get((namespace, name))


class Crash(BaseException):
    """The process dies at this point (nothing catches a BaseException)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def parse_path(path: str) -> tuple[str, str, str, str]:
    """(resource, namespace, name, subresource) of an API path."""
    parts = [p for p in path.split("?", maxsplit=1)[0].split("/") if p]
    parts = parts[2:] if parts[0] == "api" else parts[3:]
    ns = ""
    if len(parts) >= 3 and parts[0] == "namespaces":
        ns, parts = parts[1], parts[2:]
    res = parts[0]
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    return res, ns, name, sub


@dataclass
class KubeFaultPlan:
    """Fire ``kind`` on the ``nth`` write (0 = the next one), once."""

    nth: int
    kind: str  # "error" | "lost" | "crash-before" | "crash-after"
    match: str = ""  # only writes whose path contains this count
    seen: int = 0
    fired: bool = False

    def before(self, verb: str, path: str) -> None:
        if self.fired or self.seen != self.nth or self.match not in path:
            return
        if self.kind == "error":
            self.fired = True
            raise KubeError(verb, path, 500, "injected: etcd unavailable")
        if self.kind == "crash-before":
            self.fired = True
            raise Crash(f"ipamd killed before {verb} {path}")

    def after(self, verb: str, path: str) -> None:
        if self.match not in path:
            return
        n = self.seen
        self.seen += 1
        if self.fired or n != self.nth:
            return
        if self.kind == "lost":
            self.fired = True
            raise KubeError(verb, path, 0, "injected: connection dropped after the write")
        if self.kind == "crash-after":
            self.fired = True
            raise Crash(f"ipamd killed after {verb} {path}")


@dataclass
class Store:
    """The cluster's objects: resource -> (namespace, name) -> object."""

    objs: dict[str, dict[tuple[str, str], JSON]] = field(default_factory=dict)
    rv: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    writes: int = 0

    def table(self, res: str) -> dict[tuple[str, str], JSON]:
        return self.objs.setdefault(res, {})

    def put(self, res: str, obj: JSON) -> JSON:
        """Write as the apiserver would (new resourceVersion, uid kept or made)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self.rv))
        self.table(res)[(meta.get("namespace", ""), meta["name"])] = obj
        self.writes += 1
        return copy.deepcopy(obj)

    def get(self, res: str, ns: str, name: str) -> JSON | None:
        obj = self.table(res).get((ns, name))
        return copy.deepcopy(obj) if obj is not None else None

    def items(self, res: str) -> list[JSON]:
        """The stored objects themselves (read-only: every writer replaces whole objects)."""
        return list(self.table(res).values())

    def remove(self, res: str, ns: str, name: str) -> None:
        self.table(res).pop((ns, name), None)
        self.writes += 1


class FakeKube:
    """``KubeApi`` over a ``Store``; ``faults`` (one plan at a time) for writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.faults: KubeFaultPlan | None = None
        self.events: list[JSON] = []

    # --- fault hooks ---
    def _before(self, verb: str, path: str) -> None:
        if self.faults is not None and "/events" not in path:
            self.faults.before(verb, path)

    def _after(self, verb: str, path: str) -> None:
        if self.faults is not None and "/events" not in path:
            self.faults.after(verb, path)

    def close(self) -> None:
        return None

    # --- reads ---
    def without_retries(self) -> FakeKube:
        return self

    def get(self, path: str, **_: Any) -> JSON:
        res, ns, name, _ = parse_path(path)
        obj = self.store.get(res, ns, name)
        if obj is None:
            raise KubeError("GET", path, 404, "not found")
        return obj

    def get_or_none(self, path: str, **_: Any) -> JSON | None:
        res, ns, name, _ = parse_path(path)
        return self.store.get(res, ns, name)

    def list_pages(
        self, path: str, *, label_selector: str = "", page: int = 500
    ) -> Iterator[tuple[list[JSON], str]]:
        res, ns, _, _ = parse_path(path)
        want = dict(kv.split("=", 1) for kv in label_selector.split(",") if kv)
        items = [
            o
            for o in self.store.items(res)
            if (not ns or o["metadata"].get("namespace") == ns)
            and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in want.items())
        ]
        yield items, str(next(self.store.rv))

    def watch(self, *args: Any, **kwargs: Any) -> Iterator[JSON]:
        raise NotImplementedError("the model delivers changes by relisting")

    # --- writes ---
    def create(self, path: str, body: JSON, **_: Any) -> JSON:
        res, ns, _, _ = parse_path(path)
        if res == "events":
            self.events.append(body)
            return body
        self._before("POST", path)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if ns:
            meta["namespace"] = ns
        if self.store.get(res, ns, meta["name"]) is not None:
            raise KubeError("POST", path, 409, f"{res} {meta['name']} already exists")
        if res in STATUS_SUBRESOURCE:
            obj.pop("status", None)
        out = self.store.put(res, obj)
        self._after("POST", path)
        return out

    def replace(self, path: str, body: JSON, **_: Any) -> JSON:
        res, ns, name, _ = parse_path(path)
        self._before("PUT", path)
        cur = self.store.get(res, ns, name)
        if cur is None:
            raise KubeError("PUT", path, 404, "not found")
        obj = copy.deepcopy(body)
        obj.setdefault("metadata", {})["uid"] = cur["metadata"]["uid"]
        if ns:
            obj["metadata"]["namespace"] = ns
        out = self.store.put(res, obj)
        self._after("PUT", path)
        return out

    def patch(self, path: str, body: JSON, **_: Any) -> JSON:
        res, ns, name, sub = parse_path(path)
        self._before("PATCH", path)
        cur = self.store.get(res, ns, name)
        if cur is None:
            raise KubeError("PATCH", path, 404, "not found")
        want_rv = (body.get("metadata") or {}).get("resourceVersion")
        if want_rv is not None and want_rv != cur["metadata"]["resourceVersion"]:
            raise KubeError("PATCH", path, 409, "the object has been modified")
        if sub == "status":
            body = {"status": body.get("status")}
        elif res in STATUS_SUBRESOURCE:
            body = {k: v for k, v in body.items() if k != "status"}
        new = merge_patch(cur, body)
        new["metadata"]["uid"] = cur["metadata"]["uid"]
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.store.remove(res, ns, name)
            meta["resourceVersion"] = str(next(self.store.rv))
            out = new
        else:
            out = self.store.put(res, new)
        self._after("PATCH", path)
        return out

    def patch_strategic(self, path: str, body: JSON, **_: Any) -> JSON:
        # only node conditions are written this way: not modelled
        return {}

    def delete(self, path: str, *, precondition_uid: str = "", **_: Any) -> JSON | None:
        res, ns, name, _ = parse_path(path)
        self._before("DELETE", path)
        cur = self.store.get(res, ns, name)
        if cur is None:
            return None
        if precondition_uid and cur["metadata"]["uid"] != precondition_uid:
            raise KubeError("DELETE", path, 409, "uid precondition failed")
        if cur["metadata"].get("finalizers"):
            if not cur["metadata"].get("deletionTimestamp"):
                cur["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                cur = self.store.put(res, cur)
            self._after("DELETE", path)
            return cur
        self.store.remove(res, ns, name)
        self._after("DELETE", path)
        return cur


# --- cloud ------------------------------------------------------------------


class InProcessTransport:
    """The adapter's transport, straight into the emulator's request handler."""

    def __init__(self, emulator: Emulator, secret_id: str, secret_key: str, region: str) -> None:
        self.emulator = emulator
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.region = region
        self.crash_at: tuple[str, str] | None = None  # (action, "before"|"after")
        self.calls = 0

    def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.crash_at == (action, "before"):
            self.crash_at = None
            raise Crash(f"ipamd killed before {action}")
        body = json.dumps(params).encode()
        ts = int(time.time())
        host = f"{service}.emulator.local"
        headers = {
            "authorization": signature.authorization(
                self.secret_id,
                self.secret_key,
                service=service,
                host=host,
                content_type="application/json",
                body=body,
                timestamp=ts,
            ),
            "content-type": "application/json",
            "host": host,
            "x-tc-action": action,
            "x-tc-version": VERSION,
            "x-tc-region": self.region,
            "x-tc-timestamp": str(ts),
        }
        status, data = self.emulator.api.handle(headers, body)
        if self.crash_at == (action, "after"):
            self.crash_at = None
            raise Crash(f"ipamd killed after {action}")
        if status != 200:
            raise CloudError(action, "ServerNetworkError", f"HTTP {status}")
        reply: dict[str, Any] = json.loads(data)["Response"]
        err = reply.get("Error")
        if err:
            raise CloudError(action, str(err["Code"]), str(err["Message"]), reply.get("RequestId"))
        return reply


# --- node data plane ------------------------------------------------------------


@dataclass
class Veth:
    ip: str
    netns: str
    index: int  # the host end's
    peer: int  # the pod end's, in the pod's netns
    ifname: str = "eth0"


class FakeNet:
    """``NetOps`` for one node: host veths (name -> IP in the pod's netns),
    policy rules and /32 routes; ENI links from the emulator's attachments."""

    def __init__(self, emulator: Emulator, instance_id: str) -> None:
        self.emulator = emulator
        self.instance_id = instance_id
        self.links: dict[str, Veth] = {}
        self.rule_set: set[tuple[int, str, str, int]] = set()
        self.routes: set[tuple[str, int]] = set()
        self.index = itertools.count(100)
        self.fail_next: set[str] = set()  # method names whose next call raises NetlinkError
        self.fault: Any = None

    def _maybe_fail(self, what: str) -> None:
        if what in self.fail_next:
            self.fail_next.discard(what)
            raise NetlinkError(16, f"injected netlink error in {what}")

    def links_by_mac(self) -> dict[str, tuple[str, int, int, bool]]:
        w = self.emulator.world
        with w.lock:
            macs = [
                (e.mac.lower(), e.device_index)
                for e in w.enis.values()
                if e.instance_id == self.instance_id and not e.primary
            ]
        return {mac: (f"eth{idx}", 10 + (idx or 0), 1500, True) for mac, idx in macs}

    def ensure_eni(
        self, eni: EniInfo, links: dict[str, tuple[str, int, int, bool]]
    ) -> tuple[EniLink | None, list[str]]:
        found = links.get(eni.mac)
        if found is None:
            return None, [f"eni {eni.eni_id} link missing"]
        return EniLink(eni.eni_id, found[0], found[1], 1000 + found[1]), []

    def rules(self) -> set[tuple[int, str, str, int]]:
        return set(self.rule_set)

    def host_veths(self, prefix: str) -> dict[str, int]:
        return {n: v.index for n, v in self.links.items() if n.startswith(prefix)}

    def host_veth_links(self, prefix: str) -> dict[str, tuple[int, bool]]:
        return {n: (v.index, True) for n, v in self.links.items() if n.startswith(prefix)}

    def host_veth_macs(self, prefix: str) -> dict[str, tuple[int, str, int]]:
        return {
            n: (v.index, veth_mac(n, v.ip, "host"), v.peer)
            for n, v in self.links.items()
            if n.startswith(prefix)
        }

    def pod_ends(self) -> dict[tuple[int, int, str], tuple[str, str]]:
        return {
            (v.index, v.peer, veth_mac(n, v.ip, "pod")): (v.netns, v.ifname)
            for n, v in self.links.items()
        }

    def host_routes32(self) -> set[tuple[str, int]]:
        return set(self.routes)

    def _drop_ip(self, ip: str) -> None:
        self.rule_set = {r for r in self.rule_set if r[2] != ip}
        self.routes = {r for r in self.routes if r[0] != ip}

    def _add_ip(self, ip: str, index: int, table: int) -> None:
        self.rule_set.add((PRIO_TO_POD, "to", ip, RT_TABLE_MAIN))
        self.rule_set.add((PRIO_FROM_POD, "from", ip, table))
        self.routes.add((ip, index))

    def ensure_pod_host(
        self, alloc: Allocation, table: int, rules: set[tuple[int, str, str, int]]
    ) -> list[str]:
        v = self.links.get(alloc.host_veth)
        if v is None:
            return []
        self._add_ip(alloc.ip, v.index, table)
        return [f"rule for {alloc.ip}"]

    def delete_rule(self, prio: int, direction: str, ip: str, table: int) -> None:
        self.rule_set.discard((prio, direction, ip, table))

    def delete_link(self, name: str) -> bool:
        self._maybe_fail("delete_link")
        return self.links.pop(name, None) is not None

    def add_pod(self, alloc: Allocation, table: int) -> PodAttachment:
        self._maybe_fail("add_pod")
        old = self.links.pop(alloc.host_veth, None)  # a stale link of the same name goes first
        if old is not None:
            self._drop_ip(old.ip)
        index = next(self.index)
        self.links[alloc.host_veth] = Veth(alloc.ip, alloc.netns, index, 2, alloc.ifname)
        self._add_ip(alloc.ip, index, table)
        return PodAttachment(
            alloc.ip,
            alloc.host_veth,
            "02:00:00:00:00:01",
            alloc.ifname,
            "02:00:00:00:00:02",
            alloc.netns,
            1500,
        )

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        self._maybe_fail("del_pod")
        self._drop_ip(ip)
        if delete_link:
            v = self.links.get(host_veth)
            if v is not None and v.ip == ip:
                del self.links[host_veth]

    def check_pod(self, alloc: Allocation, table: int) -> None:
        return None

    def close(self) -> None:
        return None
