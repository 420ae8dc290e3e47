"""ipamd settings: one documented dataclass; every value has a CLI flag, an
environment variable (``TKE_IPAMD_<FLAG>`` with dashes as underscores) and a
default, declared once in ``SPEC`` (``kit.settings``). Flags accept both
``--flag value`` and ``--flag=value``.

Precedence: flag > environment (an empty value counts as unset) > default.
Cloud settings are the shared ``--cloud-*`` flags of ``cloud.settings``;
credentials come from the environment (``TENCENTCLOUD_SECRET_ID`` /
``TENCENTCLOUD_SECRET_KEY``) or the credential chain and are redacted when the
config is logged."""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from cloud.settings import CloudSettings
from cloud.settings import add_arguments as add_cloud_arguments
from cloud.settings import from_args as cloud_from_args
from kit import logs
from kit.settings import Flag, SettingsError, Spec, at_least, duration_or_never, effective

ENV_PREFIX = "TKE_IPAMD_"
NEVER = "never"
#: a TKE cluster id: "cls-" and 8 lower-case letters or digits (cls-kjqul1ir)
CLUSTER_ID_RE = re.compile(r"^cls-[0-9a-z]{8}$")
#: where deploy/ sets --clusterid (knob 3 of deploy/kustomization.yaml)
CLUSTER_ID_KNOB = "deploy/knobs/ipamd-args.yaml"


@dataclass(frozen=True, slots=True)
class Settings:
    cluster_id: str = ""
    claim_expired_duration: timedelta | None = None  # None: never reclaim (TKE default)
    enable_ownerref: bool = False
    kubeconfig: str = ""  # empty: in-cluster config
    # cloud: the shared ``--cloud-*`` flags of cloud.settings (docs/cloud.md), plus
    # --cloud-endpoint: one host:port for both VPC and CVM (the local emulator)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    cloud_endpoint: str = ""
    # warm pool
    min_prebind: int = 5
    max_prebind: int = 5
    ip_cooldown: timedelta = timedelta(seconds=30)
    trim_interval: timedelta = timedelta(
        minutes=2
    )  # release at most one surplus IP per node per interval
    enable_quick_release: bool = False  # each trim releases all surplus down to the max target
    # ENIs hold their node's security groups (or its nec's spec.securityGroupIds)
    enable_security_groups: bool = False
    # pod EIPs (ipamd.controllers.eipctl): the eip-attributes annotation honoured
    enable_pod_eip: bool = False
    eip_leak_min_age: timedelta = timedelta(minutes=5)
    # leak clean-up (ipamd.controllers.leaks)
    leaked_eni_min_age: timedelta = timedelta(minutes=10)
    leaked_eni_dry_run: bool = False
    # loops
    reconcile_interval: timedelta = timedelta(seconds=60)
    subnet_refresh_interval: timedelta = timedelta(seconds=30)
    workers: int = 8
    # leader election
    leader_elect: bool = True
    lease_name: str = "tke-eni-ipamd"
    lease_namespace: str = "kube-system"
    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)
    identity: str = ""
    # endpoints
    metrics_address: str = "0.0.0.0:9103"
    health_address: str = "0.0.0.0:9104"
    log_level: str = "info"
    log_format: str = "json"

    def redacted(self) -> dict[str, Any]:
        """The effective configuration for the start-up log (credentials redacted)."""
        out = effective(self)
        if self.claim_expired_duration is None:
            out["claim_expired_duration"] = NEVER
        return out


#: a flag or environment value that cannot be used; names the flag and env var
ConfigError = SettingsError


# flag name -> (Settings field, help)
_FLAGS: dict[str, tuple[str, str]] = {
    "clusterid": ("cluster_id", "cluster id (cls-...), tagged on every ENI we create"),
    "claim-expired-duration": (
        "claim_expired_duration",
        "how long after a static pod is gone its IP is returned (Go duration; default never)",
    ),
    "enable-ownerref": ("enable_ownerref", "release a claim when the owning workload is deleted"),
    "kubeconfig": ("kubeconfig", "kubeconfig path (default: in-cluster config)"),
    "cloud-endpoint": (
        "cloud_endpoint",
        "one host:port serving both VPC and CVM APIs over --cloud-protocol (the emulator)",
    ),
    "min-prebind": ("min_prebind", "warm IPs kept above the pods of a node (lower bound)"),
    "max-prebind": ("max_prebind", "warm IPs kept above the pods of a node (upper bound)"),
    "ip-cooldown": ("ip_cooldown", "a freed IP is not returned to the cloud before this"),
    "trim-interval": ("trim_interval", "release at most one surplus warm IP per node per interval"),
    "enable-quick-release": (
        "enable_quick_release",
        "each trim releases idle warm IPs straight down to the max target (true/false)",
    ),
    "enable-security-groups": (
        "enable_security_groups",
        "ENIs get and follow their node's security groups, or its NodeENIConfig's "
        "spec.securityGroupIds (true/false)",
    ),
    "enable-pod-eip": (
        "enable_pod_eip",
        "pods annotated tke.cloud.tencent.com/eip-attributes get an EIP (true/false)",
    ),
    "eip-leak-min-age": (
        "eip_leak_min_age",
        "release an EIP of ours whose pod is not seen only once it is this old",
    ),
    "reconcile-interval": ("reconcile_interval", "cloud vs CRD drift check period"),
    "leaked-eni-min-age": (
        "leaked_eni_min_age",
        "delete a leaked ENI of ours only after it has looked leaked this long",
    ),
    "leaked-eni-dry-run": (
        "leaked_eni_dry_run",
        "report leaked ENIs (event, metric) instead of deleting them (true/false)",
    ),
    "subnet-refresh-interval": ("subnet_refresh_interval", "subnet free-IP refresh period"),
    "workers": ("workers", "concurrent work items"),
    "leader-elect": ("leader_elect", "use a coordination.k8s.io Lease (true/false)"),
    "leader-elect-lease-name": ("lease_name", "Lease name"),
    "leader-elect-namespace": ("lease_namespace", "Lease namespace"),
    "leader-elect-lease-duration": ("lease_duration", "Lease duration"),
    "leader-elect-renew-deadline": ("renew_deadline", "give up leadership after failing to renew"),
    "leader-elect-retry-period": ("retry_period", "Lease acquire/renew period"),
    "identity": ("identity", "leader identity (default: hostname_pid)"),
    "metrics-address": ("metrics_address", "host:port of /metrics"),
    "health-address": ("health_address", "host:port of /healthz and /readyz"),
}


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _flag(flag: str, field_name: str, help_text: str) -> Flag:
    default = getattr(Settings(), field_name)
    if field_name == "claim_expired_duration":
        return Flag(field_name, env_name(flag), default, help_text, flag="--" + flag,
                    parse=duration_or_never, metavar="VALUE")
    check = None
    if isinstance(default, int) and not isinstance(default, bool):
        check = at_least(1 if field_name == "workers" else 0)
    return Flag(field_name, env_name(flag), default, help_text, flag="--" + flag, check=check,
                metavar="VALUE")


SPEC = Spec(
    "tke-eni-ipamd",
    "TKE VPC-CNI ipamd: ENI and IP lifecycle, static IP claims, subnets.",
    tuple(_flag(flag, name, text) for flag, (name, text) in _FLAGS.items())
    + logs.flags(ENV_PREFIX),
)


def build_parser() -> argparse.ArgumentParser:
    """ipamd's flags and the shared ``--cloud-*`` flags of ``cloud.settings``."""
    parser = SPEC.parser()
    add_cloud_arguments(parser)
    return parser


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then env, then defaults. Raises ConfigError."""
    env = os.environ if env is None else env
    loaded = SPEC.load(argv, env, parser=build_parser())
    values = dict(loaded.values)
    try:
        cloud = cloud_from_args(loaded.namespace, env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    cluster_id = values.get("cluster_id") or cloud.cluster_id
    if not cluster_id:
        raise ConfigError("--clusterid is required (the id tagged on every ENI ipamd creates)")
    values["cluster_id"] = check_cluster_id(cluster_id)
    cloud = replace(cloud, cluster_id=cluster_id, creator="tke-eni-ipamd")
    endpoint = values.get("cloud_endpoint")
    if endpoint:
        cloud = cloud.with_endpoint(endpoint, cloud.protocol)
    settings = Settings(cloud=cloud, **values)
    return validate(settings)


def check_cluster_id(value: str) -> str:
    """The cluster id, or ConfigError naming the flag and deploy/'s knob. The id
    is how ipamd tells its ENIs from any other cluster's: a placeholder shared
    by two installs makes each delete the other's ENIs."""
    v = value.strip()
    fix = (
        "set --clusterid to this cluster's id as the TKE console shows it "
        f"(cls- and 8 lower-case letters or digits) in {CLUSTER_ID_KNOB} (knob 3 of "
        "deploy/kustomization.yaml), or after install with "
        "`kubectl -n kube-system edit deployments.v1.apps tke-eni-ipamd`"
    )
    if not CLUSTER_ID_RE.match(v):
        raise ConfigError(f"invalid --clusterid {v!r}: not a TKE cluster id; {fix}")
    if len(set(v[len("cls-") :])) == 1:
        raise ConfigError(
            f"--clusterid {v!r} is a placeholder, not a cluster id: two clusters installed "
            f"with it would delete each other's ENIs; {fix}"
        )
    return v


def validate(s: Settings) -> Settings:
    if s.min_prebind > s.max_prebind:
        raise ConfigError(
            f"--min-prebind {s.min_prebind} must not exceed --max-prebind {s.max_prebind}"
        )
    if s.renew_deadline >= s.lease_duration:
        raise ConfigError(
            "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration"
        )
    if not s.identity:
        s = replace(s, identity=f"{socket.gethostname()}_{os.getpid()}")
    return s
