"""Pure: the warnings a user sees (``kubectl`` prints them as ``Warning: ...``)
for claim annotations that will not work as written, read by the one parser
of those annotations (``core.claimpolicy``, which ipamd and the agent use):

* ``vpc-ip-claim-delete-policy: Never`` on a pod whose controller is not a
  StatefulSet (static IPs are for StatefulSet pods only) — the pod gets a
  dynamic IP;
* a policy that is neither ``Never`` nor ``Immediate``;
* an unparsable ``claim-expired-duration`` (ipamd's default applies).

Only for pods that take an ENI IP. Nothing is refused: a warning never
blocks a request the API server would accept.

A pod created by a controller reports its warnings to that controller, not
to the user; so workload templates (Deployment, StatefulSet, ...) are read
too, on CREATE and UPDATE, with the workload as the pod's future controller:
``kubectl apply -f deployment.yaml`` shows the warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.claimpolicy import claim_policy, parse_expired_duration
from core.podnetwork import takes_eni_ip

from .decide import is_pod, template_of
from .review import Request

PREFIX = "tke-eni-ip-webhook: "


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_warnings(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], owner_references: object, *,
    eni_only_cluster: bool, what: str = "pod",
) -> list[str]:
    annotations = _mapping(metadata.get("annotations"))
    if not takes_eni_ip(annotations, host_network=spec.get("hostNetwork") is True,
                        eni_only_cluster=eni_only_cluster):
        return []
    out = []
    policy = claim_policy(annotations, owner_references)
    if policy.message:
        out.append(f"{PREFIX}{what}: {policy.message}")
    expired = parse_expired_duration(annotations)
    if expired.error:
        out.append(f"{PREFIX}{what}: {expired.error}")
    return out


def warnings_for(req: Request, *, eni_only_cluster: bool) -> list[str]:
    """Warnings for a pod CREATE or a workload CREATE/UPDATE; [] for anything else."""
    if req.operation not in ("CREATE", "UPDATE"):
        return []
    if is_pod(req):
        if req.operation != "CREATE":
            return []
        meta = _mapping(req.obj.get("metadata"))
        return pod_warnings(meta, _mapping(req.obj.get("spec")), meta.get("ownerReferences"),
                            eni_only_cluster=eni_only_cluster)
    template = template_of(req)
    if template is None:
        return []
    name = str(_mapping(req.obj.get("metadata")).get("name") or req.name)
    # the pods' controller: the workload itself (a Deployment's ReplicaSet is not
    # a StatefulSet either); what matters is "is it a StatefulSet"
    owner = [{"apiVersion": f"{req.kind.group}/{req.kind.version}", "kind": req.kind.kind,
              "name": name, "controller": True}]
    return pod_warnings(_mapping(template.get("metadata")), _mapping(template.get("spec")), owner,
                        eni_only_cluster=eni_only_cluster,
                        what=f"{req.kind.kind} {name} pod template")
