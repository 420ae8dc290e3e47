"""Keep the host set-up true, collect what the runtime forgot, answer ipamd's
release requests. One pass runs at start (recovery against live links,
before the socket opens), then every ``interval`` seconds; every correction
is logged and counted as drift."""

from __future__ import annotations

import logging
import threading
import time

from pyroute2.netlink.exceptions import NetlinkError

from . import pool
from .agent import Agent
from .dataplane.netops import ensure_sysctl, pod_host_looks_right
from .dataplane.podnet import PRIO_FROM_POD, PRIO_TO_POD
from .pool import Allocation
from .recover import rebuild_allocations

log = logging.getLogger(__name__)

HOST_SYSCTLS = (("ip_forward", "1"), ("conf/all/rp_filter", "0"), ("conf/default/rp_filter", "0"))


def _kind(item: str) -> str:
    if item.startswith("sysctl"):
        return "sysctl"
    if item.startswith("rule"):
        return "rule"
    if item.startswith("eni"):
        return "eni"
    return "route"


class Reconciler:
    def __init__(self, agent: Agent, interval: float = 10.0) -> None:
        self.agent = agent
        self.interval = interval
        self.last_pass = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _drift(self, items: list[str], where: str) -> None:
        for item in items:
            log.warning("drift corrected", extra={"where": where, "drift": item})
            self.agent.metrics.drift.labels(_kind(item)).inc()

    def run_once(self) -> None:
        a = self.agent
        view = a.source.view()
        for name, value in HOST_SYSCTLS:
            self._drift(ensure_sysctl(name, value), "host")
        links = a.net.links_by_mac()
        for eni in view.enis:
            link, drift = a.net.ensure_eni(eni, links)
            if link is None:
                log.info("eni link not present", extra={"eni": eni.eni_id, "mac": eni.mac})
                a.eni_links.pop(eni.eni_id, None)
                continue
            self._drift(drift, f"eni {eni.eni_id}")
            known = a.eni_links.get(eni.eni_id)
            if known != link:
                a.eni_links[eni.eni_id] = link
        if a.recovery.active:
            rebuild_allocations(a)
        self._pods()
        with a.lock:
            changed = pool.grant_releases(view, a.state, time.time())
            seq = a.checkpoint.mark() if changed else 0
            counts = pool.counts(view, a.state, time.time())
        if changed:
            a.checkpoint.wait(seq)
            a.on_change()
        for phase in ("total", "in_use", "cooldown", "free", "released"):
            a.metrics.pool.labels(phase).set(getattr(counts, phase))
        self.last_pass = time.monotonic()

    def _pods(self) -> None:
        """Live pods keep their host route and rules; an allocation whose host
        veth is gone (pod netns deleted, DEL done offline, ADD crashed
        before the veth) is released; rules and veths of ours that no
        allocation explains are removed. An ADD in flight (or one that ended
        during the pass) only shields its own IP: a mark left behind by a
        failed ADD must not stop the clean-up of everything else. A netlink
        error on one item is logged; the pass goes on."""
        a = self.agent
        with a.lock:
            allocs = [x for x in a.state.allocations.values() if x.ip not in a.in_flight]
            epoch = a.add_epoch
        links = a.net.host_veth_links(a.settings.host_veth_prefix)
        veths = {name: index for name, (index, _up) in links.items()}
        rules = a.net.rules()
        routes = a.net.host_routes32()
        node_ips = {i.ip for i in a.source.view().ips}
        for alloc in allocs:
            link = a.eni_links.get(alloc.eni_id)
            if alloc.host_veth not in veths:
                self._release_gone(alloc, epoch)
            elif link is not None:
                self._keep_pod(alloc, link.table, rules, links, routes)
        with a.lock:
            ours = set(a.state.allocations) | set(a.in_flight)
            veth_names = {x.host_veth for x in a.state.allocations.values()}
            quiet = a.add_epoch == epoch
        if not quiet:
            return  # an ADD ended since the dumps: its rules may be newer, look next pass
        if a.recovery.active:
            return  # a live link not accounted for may own any rule or IP: delete nothing
        for prio, direction, ip, table in rules:
            if ip not in ours and ip in node_ips and prio in (PRIO_TO_POD, PRIO_FROM_POD):
                try:
                    a.net.delete_rule(prio, direction, ip, table)
                except (NetlinkError, OSError) as exc:
                    log.warning("stale rule not removed", extra={"ip": ip, "error": str(exc)})
                    continue
                self._drift([f"rule {direction} {ip} lookup {table} is stale"], "host")
        for name in veths:
            if name not in veth_names:
                log.info("gc: host veth without allocation removed", extra={"veth": name})
                try:
                    a.net.delete_link(name)
                except (NetlinkError, OSError) as exc:
                    log.warning("orphan veth not removed", extra={"veth": name, "error": str(exc)})
                    continue
                a.metrics.gc.labels("orphan-veth").inc()

    def _release_gone(self, alloc: Allocation, epoch: int) -> None:
        """Release ``alloc``, whose host veth was not in the pass's dump, unless
        an ADD of its IP is in flight or ended since the dump (a retried ADD
        re-creates the link)."""
        a = self.agent
        with a.lock:
            busy = alloc.ip in a.in_flight or a.add_ended.get(alloc.ip, 0) > epoch
            if busy or a.state.allocations.get(alloc.ip) is not alloc:
                return  # look again next pass
            log.info(
                "gc: pod link gone, releasing",
                extra={"ip": alloc.ip, "container": alloc.container_id, "veth": alloc.host_veth},
            )
            pool.release(a.state, alloc.ip, time.time(), a.settings.cooldown)
            seq = a.checkpoint.mark()
        try:
            a.net.del_pod(alloc.ip, alloc.host_veth)
        except (NetlinkError, OSError) as exc:  # its rules are stale now: removed below
            log.warning(
                "rules of a gone pod not removed", extra={"ip": alloc.ip, "error": str(exc)}
            )
        a.checkpoint.wait(seq)
        a.metrics.gc.labels("link-gone").inc()
        a.on_change()

    def _keep_pod(
        self,
        alloc: Allocation,
        table: int,
        rules: set[tuple[int, str, str, int]],
        links: dict[str, tuple[int, bool]],
        routes: set[tuple[str, int]],
    ) -> None:
        """A live pod's host route and rules: checked against the pass's dumps,
        looked at again live (and repaired) only when something seems missing."""
        a = self.agent
        with a.lock:
            current = a.state.allocations.get(alloc.ip) is alloc
        if not current or pod_host_looks_right(alloc, table, rules, links, routes):
            return
        try:
            drift = a.net.ensure_pod_host(alloc, table, rules)
        except NetlinkError as exc:  # one pod's trouble must not stop the pass
            log.warning("pod host set-up failed", extra={"ip": alloc.ip, "error": str(exc)})
            return
        self._drift(drift, f"pod {alloc.ip}")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
                self.agent.metrics.reconciles.labels("ok").inc()
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("reconcile pass failed")
                self.agent.metrics.reconciles.labels("error").inc()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
