"""Typed writes of ipamd's CRDs (VpcENI, VpcIP, VpcIPClaim). Every write is
fed back into the matching informer at once (see ``Informer.apply``)."""

from __future__ import annotations

from typing import Any, Protocol

from core import models as m
from core import names
from ipamd.kube import paths
from ipamd.kube.api import JSON, KubeApi, KubeError

#: VpcIP spec fields sent as they are in a re-pointing patch (the others, when
#: empty, are deleted: nothing of the previous holder's spec is left)
IP_SPEC_REQUIRED = ("node_name", "eni_id", "subnet_id", "zone", "state")


class Applies(Protocol):
    def apply(self, obj: JSON | None, *, deleted_key: str = "") -> None: ...


def _obj(kind: str, name: str, labels: dict[str, str], spec: JSON, namespace: str = "") -> JSON:
    meta: JSON = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": names.CRD_API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


class CrdWriter:
    def __init__(self, api: KubeApi, ips: Applies, enis: Applies, claims: Applies) -> None:
        self.api = api
        self.ips = ips
        self.enis = enis
        self.claims = claims

    # --- VpcENI ---
    def create_eni(self, spec: m.VpcEniSpec, status: m.VpcEniStatus, eni_id: str) -> JSON:
        body = _obj(names.KIND_VPC_ENI, eni_id, {names.NODE_LABEL: spec.node_name}, spec.to_dict())
        try:
            obj = self.api.create(paths.VPC_ENIS, body)
        except KubeError as exc:
            if not exc.conflict:
                raise
            obj = self.api.patch(
                paths.vpc_eni(eni_id),
                {"metadata": {"labels": body["metadata"]["labels"]}, "spec": spec.to_dict()},
            )
        return self.eni_status(eni_id, status, base=obj)

    def eni_status(self, eni_id: str, status: m.VpcEniStatus, base: JSON | None = None) -> JSON:
        obj = self.api.patch(paths.vpc_eni(eni_id) + "/status", {"status": status.to_dict()})
        self.enis.apply(obj)
        return obj

    def delete_eni(self, eni_id: str) -> None:
        self.api.delete(paths.vpc_eni(eni_id))
        self.enis.apply(None, deleted_key=eni_id)

    # --- VpcIP ---
    def create_ip(self, ip: str, spec: m.VpcIpSpec) -> JSON:
        body = _obj(names.KIND_VPC_IP, ip, {names.NODE_LABEL: spec.node_name}, spec.to_dict())
        if spec.claim:
            body["metadata"]["annotations"] = {"tke.cloud.tencent.com/claim": spec.claim}
        try:
            obj = self.api.create(paths.VPC_IPS, body)
        except KubeError as exc:
            if not exc.conflict:
                raise
            # a record left from before (crash, a move replayed, a record
            # re-pointed): make it say what we intend now, and forget what the
            # previous holder's agent wrote (its use, its answer to a release
            # request): only the new holder's agent speaks for it. Status first:
            # a crash in between leaves the old spec with no answer, never the
            # new spec with the old answer.
            self.api.patch(paths.vpc_ip(ip) + "/status", {"status": None})
            obj = self.api.patch(
                paths.vpc_ip(ip),
                {
                    "metadata": {"labels": body["metadata"]["labels"]},
                    "spec": spec.to_patch(keep=IP_SPEC_REQUIRED),
                },
            )
        self.ips.apply(obj)
        return obj

    def patch_ip_spec(self, ip: str, patch: dict[str, Any]) -> JSON:
        obj = self.api.patch(paths.vpc_ip(ip), {"spec": patch})
        self.ips.apply(obj)
        return obj

    def delete_ip(self, ip: str) -> None:
        self.api.delete(paths.vpc_ip(ip))
        self.ips.apply(None, deleted_key=ip)

    # --- VpcIPClaim ---
    def create_claim(
        self,
        namespace: str,
        name: str,
        spec: m.VpcIpClaimSpec,
        *,
        owner: JSON | None,
        labels: dict[str, str] | None = None,
    ) -> JSON:
        body = _obj(names.KIND_VPC_IP_CLAIM, name, labels or {}, spec.to_dict(), namespace)
        body["metadata"]["finalizers"] = [names.FINALIZER_RELEASE_IP]
        if owner:
            body["metadata"]["ownerReferences"] = [owner]
        obj = self.api.create(paths.claims_in(namespace), body)
        obj = self.claim_status(namespace, name, m.VpcIpClaimStatus(phase=m.CLAIM_PHASE_PENDING))
        return obj

    def claim_status(self, namespace: str, name: str, status: m.VpcIpClaimStatus) -> JSON:
        body = {"status": status.to_patch()}
        obj = self.api.patch(paths.claim(namespace, name) + "/status", body)
        self.claims.apply(obj)
        return obj

    def add_claim_finalizer(self, namespace: str, name: str, current: list[str]) -> None:
        fins = [*current, names.FINALIZER_RELEASE_IP]
        obj = self.api.patch(paths.claim(namespace, name), {"metadata": {"finalizers": fins}})
        self.claims.apply(obj)

    def remove_claim_finalizer(self, namespace: str, name: str) -> None:
        """Drop our finalizer (the claim goes away if it is being deleted)."""
        try:
            obj = self.api.get(paths.claim(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                self.claims.apply(None, deleted_key=f"{namespace}/{name}")
                return
            raise
        fins = [
            f for f in (obj["metadata"].get("finalizers") or []) if f != names.FINALIZER_RELEASE_IP
        ]
        patch = {
            "metadata": {"finalizers": fins, "resourceVersion": obj["metadata"]["resourceVersion"]}
        }
        try:
            new = self.api.patch(paths.claim(namespace, name), patch)
        except KubeError as exc:
            if exc.not_found:
                self.claims.apply(None, deleted_key=f"{namespace}/{name}")
                return
            raise
        if new.get("metadata", {}).get("deletionTimestamp") and not fins:
            self.claims.apply(None, deleted_key=f"{namespace}/{name}")
        else:
            self.claims.apply(new)

    def delete_claim(self, namespace: str, name: str) -> None:
        self.api.delete(paths.claim(namespace, name))
