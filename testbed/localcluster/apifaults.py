"""What the apiserver fault proxy (``localcluster.faultproxy``) injects, and into
which requests: Kubernetes request classification (verb, resource, subresource
as RBAC names them) and a seeded plan of fault rules with counters. No I/O.

Fault kinds:

* ``error`` — the request is not forwarded; the client gets ``status`` (500,
  429 with ``Retry-After``, 503, ...) with a ``Status`` body.
* ``error-after-write`` — forwarded (the write happens), the reply is replaced
  by ``status`` (what the apiserver does when etcd commits after its timeout).
* ``timeout`` — not forwarded; the connection is held ``delay`` seconds and
  closed with no reply.
* ``reply-lost`` — forwarded (the write happens), then after ``delay`` seconds
  the connection is closed with no reply.
* ``slow`` — forwarded after ``delay`` seconds (latency).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qs

KINDS: Final = ("error", "error-after-write", "timeout", "reply-lost", "slow")
VERBS: Final = (
    "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
)
WRITE_VERBS: Final = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_FORWARDED: Final = frozenset({"error-after-write", "reply-lost", "slow"})


class FaultConfigError(ValueError):
    """A fault rule is malformed; the message names the field and the value."""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request as RBAC sees it. ``resource`` is ``""`` for non-resource
    paths (``/healthz``, discovery), then ``verb`` is the lower-case method."""

    method: str
    path: str
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def resource_key(self) -> str:
        """``vpcips`` or ``vpcips/status`` (the RBAC spelling)."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def classify(method: str, target: str) -> ApiRequest:
    """``method`` and request target (path with query) -> ``ApiRequest``."""
    method = method.upper()
    path, _, query = target.partition("?")
    parts = [p for p in path.split("/") if p]
    watch_param = parse_qs(query).get("watch", [""])[-1].lower() in ("true", "1")
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        rest = []
        group = ""
    if not rest:  # /healthz, /version, /api, /apis/<group>/<version>, ...
        return ApiRequest(method, path, method.lower())
    legacy_watch = rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = "/".join(rest[2:])
    if resource == "namespaces" and namespace == "" and name:
        namespace = name
    verb = _verb(method, bool(name), watch_param or legacy_watch)
    return ApiRequest(method, path, verb, group, resource, sub, namespace, name)


def _verb(method: str, named: bool, watch: bool) -> str:
    by_method = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method in ("GET", "HEAD"):
        return "watch" if watch else ("get" if named else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return by_method.get(method, method.lower())


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Inject ``kind`` into a matching request with probability ``rate``.

    ``verbs``/``resources`` empty: every verb/resource (non-resource paths
    included). A resource matches as in RBAC: ``vpcips`` is the object itself,
    ``vpcips/status`` its status, ``*`` any. ``limit``: at most that many
    injections by this rule (None: no limit)."""

    kind: str
    rate: float
    verbs: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    status: int = 500
    delay: float = 0.0
    limit: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultConfigError(f"fault kind {self.kind!r}: want one of {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise FaultConfigError(f"fault {self.label}: rate {self.rate!r} is not in [0, 1]")
        bad = sorted(set(self.verbs) - set(VERBS))
        if bad:
            raise FaultConfigError(
                f"fault {self.label}: unknown verbs {bad}; want some of {', '.join(VERBS)}"
            )
        if any(not r or r.startswith("/") or r.count("/") > 1 for r in self.resources):
            raise FaultConfigError(
                f"fault {self.label}: resources {sorted(self.resources)} must look like "
                "'pods', 'pods/status' or '*'"
            )
        if self.kind.startswith("error") and not 400 <= self.status <= 599:
            raise FaultConfigError(
                f"fault {self.label}: status {self.status} is not an HTTP error (400-599)"
            )
        if self.delay < 0:
            raise FaultConfigError(f"fault {self.label}: delay {self.delay} is negative")
        if self.limit is not None and self.limit < 0:
            raise FaultConfigError(f"fault {self.label}: limit {self.limit} is negative")

    @property
    def label(self) -> str:
        """Counter key: the name if given, else ``error-500``, ``reply-lost``..."""
        if self.name:
            return self.name
        return f"{self.kind}-{self.status}" if self.kind.startswith("error") else self.kind

    @property
    def forwards(self) -> bool:
        return self.kind in _FORWARDED

    def matches(self, req: ApiRequest) -> bool:
        if self.verbs and req.verb not in self.verbs:
            return False
        if not self.resources or "*" in self.resources:
            return True
        return req.resource_key in self.resources


def rule(
    kind: str,
    rate: float = 1.0,
    *,
    verbs: str | tuple[str, ...] = (),
    resources: str | tuple[str, ...] = (),
    status: int = 500,
    delay: float = 0.0,
    limit: int | None = None,
    name: str = "",
) -> FaultRule:
    """``rule("error", 0.05, verbs="create,patch", resources="vpcips,vpcips/status")``."""

    def split(v: str | tuple[str, ...]) -> frozenset[str]:
        items = v.split(",") if isinstance(v, str) else v
        return frozenset(i.strip() for i in items if i.strip())

    return FaultRule(kind, rate, split(verbs), split(resources), status, delay, limit, name)


@dataclass
class FaultPlan:
    """The rules in force (first one that matches and rolls a hit wins) and
    what was injected. Thread-safe; ``set_rules`` may be called any time."""

    seed: int = 0
    rules: tuple[FaultRule, ...] = ()
    injected: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    journal: list[str] = field(default_factory=list)
    journal_max: int = 2000
    _rng: random.Random = field(init=False, repr=False)
    _used: Counter[int] = field(default_factory=Counter, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - fault rolls, not crypto

    def set_rules(self, *rules: FaultRule) -> None:
        with self._lock:
            self.rules = tuple(rules)
            self._used.clear()

    def clear(self) -> None:
        self.set_rules()

    def pick(self, req: ApiRequest) -> FaultRule | None:
        """The fault for this request, counted; None: forward it untouched."""
        with self._lock:
            self.requests += 1
            for i, r in enumerate(self.rules):
                if not r.matches(req) or r.rate <= 0.0:
                    continue
                if r.limit is not None and self._used[i] >= r.limit:
                    continue
                if r.rate < 1.0 and self._rng.random() >= r.rate:
                    continue
                self._used[i] += 1
                self.injected[r.label] += 1
                if len(self.journal) < self.journal_max:
                    self.journal.append(f"{r.label} {req.verb} {req.resource_key} {req.path}")
                return r
            return None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)

    def total(self) -> int:
        with self._lock:
            return sum(self.injected.values())
