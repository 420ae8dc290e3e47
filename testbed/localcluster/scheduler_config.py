"""KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) documents.

Pure: builds dictionaries; :func:`write_scheduler_config` writes the YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "kubescheduler.config.k8s.io/v1"
ENI_IP_RESOURCE = "tke.cloud.tencent.com/eni-ip"


@dataclass(frozen=True)
class ManagedResource:
    name: str
    ignored_by_scheduler: bool = False


@dataclass(frozen=True)
class Extender:
    """One ``extenders[]`` entry. Field meanings: kube-scheduler's Extender configuration (v1)."""

    url_prefix: str
    filter_verb: str = "filter"
    prioritize_verb: str = ""
    preempt_verb: str = ""
    bind_verb: str = ""
    weight: int = 1
    node_cache_capable: bool = True
    managed_resources: tuple[ManagedResource, ...] = ()
    ignorable: bool = False
    http_timeout: str = "5s"
    #: ``tlsConfig`` (certFile/keyFile/caFile/...; ExtenderPKI.tls_config()) for https
    tls_config: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "urlPrefix": self.url_prefix,
            "nodeCacheCapable": self.node_cache_capable,
            "ignorable": self.ignorable,
            "httpTimeout": self.http_timeout,
            "enableHTTPS": self.url_prefix.startswith("https://"),
        }
        if self.tls_config:
            doc["tlsConfig"] = dict(self.tls_config)
        verbs = (("filterVerb", self.filter_verb), ("prioritizeVerb", self.prioritize_verb),
                 ("preemptVerb", self.preempt_verb), ("bindVerb", self.bind_verb))
        for key, verb in verbs:
            if verb:
                doc[key] = verb
        if self.prioritize_verb:
            doc["weight"] = self.weight
        if self.managed_resources:
            doc["managedResources"] = [
                {"name": r.name, "ignoredByScheduler": r.ignored_by_scheduler}
                for r in self.managed_resources
            ]
        return doc


def eni_ip_extender(url_prefix: str, **kwargs: Any) -> Extender:
    """The extender entry our deployment uses: eni-ip managed, node cache capable."""
    kwargs.setdefault("managed_resources", (ManagedResource(ENI_IP_RESOURCE),))
    return Extender(url_prefix=url_prefix, **kwargs)


@dataclass(frozen=True)
class SchedulerConfig:
    """What a test chooses; the control plane fills in the kubeconfig."""

    extenders: tuple[Extender, ...] = ()
    scheduler_name: str = "default-scheduler"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, kubeconfig: Path) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "leaderElection": {"leaderElect": False},
            "profiles": [{"schedulerName": self.scheduler_name}],
        }
        if self.extenders:
            doc["extenders"] = [e.to_dict() for e in self.extenders]
        doc.update(self.extra)
        return doc


def complete_config(config: SchedulerConfig | Mapping[str, Any] | None,
                    kubeconfig: Path) -> dict[str, Any]:
    """A full document from a :class:`SchedulerConfig`, a raw mapping or ``None``.

    A raw mapping is used as given, with ``clientConnection.kubeconfig`` and
    ``leaderElection.leaderElect: false`` filled in when absent.
    """
    if config is None:
        return SchedulerConfig().to_dict(kubeconfig)
    if isinstance(config, SchedulerConfig):
        return config.to_dict(kubeconfig)
    doc = dict(config)
    doc.setdefault("apiVersion", API_VERSION)
    doc.setdefault("kind", "KubeSchedulerConfiguration")
    conn = dict(doc.get("clientConnection") or {})
    conn.setdefault("kubeconfig", str(kubeconfig))
    doc["clientConnection"] = conn
    election = dict(doc.get("leaderElection") or {})
    election.setdefault("leaderElect", False)
    doc["leaderElection"] = election
    return doc


def write_scheduler_config(path: Path, config: SchedulerConfig | Mapping[str, Any] | None,
                           kubeconfig: Path) -> Path:
    path.write_text(yaml.safe_dump(complete_config(config, kubeconfig), sort_keys=False))
    return path
