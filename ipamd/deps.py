"""What the controllers share: settings, the cluster view, the cloud port
and the Kubernetes writers. Built once by ``ipamd.app``; tests build it too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud.ports import CloudApi
from ipamd.config import Settings
from ipamd.kube.crds import CrdWriter
from ipamd.kube.events import EventRecorder
from ipamd.kube.objects import ObjectWriter
from ipamd.state import ClusterState


@dataclass(slots=True)
class Deps:
    settings: Settings
    state: ClusterState
    cloud: CloudApi
    crds: CrdWriter
    objects: ObjectWriter
    events: EventRecorder
    #: (node, instance id) -> the security groups a new ENI of the node gets;
    #: None: --enable-security-groups is off (the cloud settings' groups)
    eni_security_groups: Callable[[str, str], tuple[str, ...]] | None = None
