"""The one place the plugin builds its cloud client: an ``InstanceReader``
(DescribeNetworkInterfaceLimit) from the cloud layer's adapter.

Cloud settings: the adapter's own env vars (``TKE_CLOUD_*``, see
docs/cloud.md), then ours on top: ``--region`` (else the metadata's
placement/region), ``--cloud-endpoint`` (``host[:port]`` for both VPC and
CVM; an ``http://`` prefix selects plain HTTP, e.g. the local emulator) and
``--metadata-url`` (also where a CVM role's credentials are read).
Credentials come from the adapter's chain (env, profile file, CVM role);
the plugin never reads or logs them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cloud.ports import InstanceReader
from cloud.settings import CloudSettings, from_env
from device_plugin.identity import NodeIdentity
from device_plugin.settings import Settings

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from cloud.adapter import TencentCloud

ReaderFactory = Callable[[NodeIdentity, Settings], InstanceReader]


def cloud_settings(
    identity: NodeIdentity, settings: Settings, environ: Mapping[str, str] | None = None
) -> CloudSettings:
    base = from_env(os.environ if environ is None else environ)
    changes: dict[str, Any] = {"metadata_url": settings.metadata_url}
    if identity.region:
        changes["region"] = identity.region
    if settings.cloud_endpoint:
        scheme, sep, host = settings.cloud_endpoint.partition("://")
        if sep:
            changes["protocol"] = scheme
        endpoint = (host if sep else settings.cloud_endpoint).rstrip("/")
        changes["vpc_endpoint"] = changes["cvm_endpoint"] = endpoint
    return dataclasses.replace(base, **changes)


def make_cloud(
    identity: NodeIdentity, settings: Settings, registry: CollectorRegistry | None
) -> TencentCloud:
    """The cloud adapter for this node's calls (DescribeNetworkInterfaceLimit,
    DescribeAddressQuota), its ``tke_cloud_*`` metrics in ``registry``.

    Imported here: a plugin on table limits never loads the SDK; one on the API
    loads the SDK's common client only, not its generated models (~17 MB of
    RSS, docs/node.md "Footprint")."""
    from cloud.adapter import TencentCloud
    from cloud.credentials import provider_for
    from cloud.metrics import CloudMetrics
    from cloud.sdk_transport import SdkTransport

    cs = cloud_settings(identity, settings)
    log.info("cloud settings %s", cs.redacted())
    return TencentCloud(
        cs, SdkTransport(cs, provider_for(cs), generic=True), metrics=CloudMetrics.into(registry)
    )


def make_instance_reader(registry: CollectorRegistry | None) -> ReaderFactory:
    """The reader factory: the adapter, its ``tke_cloud_*`` metrics in
    ``registry`` (the plugin's, served on its ``/metrics``)."""

    def make(identity: NodeIdentity, settings: Settings) -> InstanceReader:
        return make_cloud(identity, settings, registry)

    return make
