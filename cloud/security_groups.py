"""Security-group calls ipamd makes (``SecurityGroupWriter``), mixed into the
adapter: AssociateNetworkInterfaceSecurityGroups and
DisassociateNetworkInterfaceSecurityGroups. The groups an ENI holds come with
DescribeNetworkInterfaces (``Eni.security_groups``, its ``GroupSet`` in order).

Both calls are synchronous on the API (no task to wait for) and harmless to
replay: associating a group the ENI holds, or disassociating one it does not,
changes nothing. So the adapter retries them like any write (throttling, 5xx,
a lost reply) and a retry after an ambiguous failure is safe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from core.ids import EniId

MAX_IDS = 100  # ENIs and groups per call


class SecurityGroupWriter(Protocol):
    def associate_security_groups(self, eni_ids: Sequence[EniId], group_ids: Sequence[str]) -> None:
        """Append ``group_ids`` (in order) to each ENI's groups it does not hold yet."""
        ...

    def disassociate_security_groups(
        self, eni_ids: Sequence[EniId], group_ids: Sequence[str]
    ) -> None:
        """Remove ``group_ids`` from each ENI; the others keep their order."""
        ...


def _request(eni_ids: Sequence[EniId], group_ids: Sequence[str]) -> dict[str, Any]:
    if not eni_ids or not group_ids:
        raise ValueError("security group (dis)association needs ENIs and groups")
    if len(eni_ids) > MAX_IDS or len(group_ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} ENIs and {MAX_IDS} groups per call")
    return {"NetworkInterfaceIds": list(eni_ids), "SecurityGroupIds": list(group_ids)}


class SecurityGroupCalls:
    """Mixed into ``cloud.adapter.TencentCloud`` (which provides ``_call``:
    the fence, the limiter, retries, error classes and metrics)."""

    def _call(
        self,
        action: str,
        params: dict[str, Any],
        *,
        write: bool = False,
        gone_ok_on_retry: bool = False,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def associate_security_groups(self, eni_ids: Sequence[EniId], group_ids: Sequence[str]) -> None:
        self._call(
            "AssociateNetworkInterfaceSecurityGroups", _request(eni_ids, group_ids), write=True
        )

    def disassociate_security_groups(
        self, eni_ids: Sequence[EniId], group_ids: Sequence[str]
    ) -> None:
        self._call(
            "DisassociateNetworkInterfaceSecurityGroups", _request(eni_ids, group_ids), write=True
        )
