"""Real network namespaces for the agent stand-in's pods (the ipamd churn):
each running pod gets a namespace of its own with its granted address on a
link, so the invariants can be read back from the kernel
(``ip -n NS -j addr``) and not only from records. The link is one end of a
veth pair kept inside the namespace (a dummy link needs a module the test
machines may lack).

Names: ``tkeipamd-<pid>-<n>``: unique per test process; ``sweep()`` deletes
the leftovers of earlier runs whose process is gone (an interrupted run),
never another live run's. ``close()`` deletes this run's namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass

PREFIX = "tkeipamd-"
LINK = "pod0"


class NetnsError(RuntimeError):
    pass


def _ip(*args: str) -> str:
    argv = ["ip", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def require_root() -> str:
    """'' when namespaces can be made here, else what to do (a test fails with it)."""
    if os.geteuid() != 0:
        return "the churn binds pod addresses in real network namespaces: run it as root (as CI)"
    if not os.access("/usr/sbin/ip", os.X_OK) and not os.access("/sbin/ip", os.X_OK):
        return "ip (iproute2) missing: run hack/setup.sh (step: Debian packages)"
    return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep() -> list[str]:
    """Delete namespaces of earlier runs whose process is gone; returns their names."""
    gone = []
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
            gone.append(name)
    return gone


@dataclass(frozen=True)
class Bound:
    netns: str
    ip: str


class PodNetns:
    """One namespace per running pod (by pod UID), holding its address on its
    link. Thread-safe (the stand-in answers from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serial = 0
        self.by_uid: dict[str, Bound] = {}
        self.ops: Counter[str] = Counter()

    def bind(self, uid: str, ip: str) -> str:
        """CNI ADD: a namespace for pod ``uid`` with ``ip`` on its link."""
        with self._lock:
            old = self.by_uid.pop(uid, None)
            if old is not None:
                _ip("netns", "del", old.netns)  # a new sandbox of the same pod
            self._serial += 1
            name = f"{PREFIX}{os.getpid()}-{self._serial}"
            _ip("netns", "add", name)
            self.by_uid[uid] = Bound(name, ip)  # before the links: close() finds it
            # a veth pair inside the namespace (the kernel here may lack the dummy module)
            _ip("-n", name, "link", "add", LINK, "type", "veth", "peer", "name", f"{LINK}p")
            _ip("-n", name, "addr", "add", f"{ip}/32", "dev", LINK)
            _ip("-n", name, "link", "set", LINK, "up")
            self.ops["bind"] += 1
            return name

    def unbind_ip(self, ip: str) -> bool:
        """CNI DEL of the pod holding ``ip`` (its namespace goes); False if none."""
        with self._lock:
            uid = next((u for u, b in self.by_uid.items() if b.ip == ip), None)
            if uid is None:
                return False
            b = self.by_uid.pop(uid)
            _ip("netns", "del", b.netns)
            self.ops["unbind"] += 1
            return True

    def drop_address(self, ip: str) -> list[str]:
        """The release of ``ip`` was granted: no namespace may keep it (removed
        from any that still holds it; a running pod that loses it this way
        fails the invariants). Returns the namespaces it was taken from."""
        taken = []
        with self._lock:
            names = [b.netns for b in self.by_uid.values()]
        for name, addrs in self._read(names).items():
            if ip in addrs:
                subprocess.run(
                    ["ip", "-n", name, "addr", "del", f"{ip}/32", "dev", LINK],
                    capture_output=True,
                    check=False,
                )
                taken.append(name)
        return taken

    def addresses(self) -> dict[str, tuple[str, set[str]]]:
        """pod UID -> (namespace, the IPv4 addresses the kernel shows in it, lo aside)."""
        with self._lock:
            bound = dict(self.by_uid)
        read = self._read([b.netns for b in bound.values()])
        return {uid: (b.netns, read.get(b.netns, set())) for uid, b in bound.items()}

    @staticmethod
    def _read(names: list[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for name in names:
            try:
                links = json.loads(_ip("-n", name, "-j", "addr", "show") or "[]")
            except NetnsError:
                continue  # deleted meanwhile
            out[name] = {
                a["local"]
                for link in links
                if link.get("ifname") != "lo"
                for a in link.get("addr_info") or []
                if a.get("family") == "inet"
            }
        return out

    def close(self) -> None:
        with self._lock:
            bound, self.by_uid = list(self.by_uid.values()), {}
        for b in bound:
            subprocess.run(["ip", "netns", "del", b.netns], capture_output=True, check=False)

    def own_leftovers(self) -> list[str]:
        """This process's namespaces the kernel still lists (after ``close``: none)."""
        mine = f"{PREFIX}{os.getpid()}-"
        return [
            line.split()[0]
            for line in _ip("netns", "list").splitlines()
            if line.strip() and line.split()[0].startswith(mine)
        ]
