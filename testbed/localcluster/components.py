"""Command lines of the control-plane programs (pure: paths and ports in, argv out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from localcluster.certs import ClusterPKI

SERVICE_CIDR = "10.0.0.0/24"


@dataclass(frozen=True)
class ClusterNetwork:
    """Where a control plane that serves real pods is reached from the cluster network.

    ``advertise_address``: the apiserver's address on the nodes' network (a load
    balancer in front of its loopback listener; the ``kubernetes`` Service's endpoint).
    ``service_cidr``: the Services' ClusterIP range (its first address is ``kubernetes``).
    With a network, the apiserver also runs the ServiceAccount admission plugin (pods get
    their in-cluster token) and reaches kubelets with a client certificate
    (``kubectl logs``/``exec``)."""

    advertise_address: str
    service_cidr: str = "10.96.0.0/16"

    @property
    def kubernetes_service_ip(self) -> str:
        import ipaddress
        return str(ipaddress.ip_network(self.service_cidr).network_address + 1)
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def etcd_argv(etcd: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(etcd), "--name=default", f"--data-dir={data_dir}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}", "--initial-cluster-state=new",
        # Throw-away test data: no fsync, small quota, quiet logs.
        "--unsafe-no-fsync", "--quota-backend-bytes=2147483648",
        "--log-level=warn", "--logger=zap",
    ]


def apiserver_argv(apiserver: Path, pki: ClusterPKI, etcd_port: int, secure_port: int,
                   extra: Sequence[str] = (), *, network: ClusterNetwork | None = None
                   ) -> list[str]:
    return [
        str(apiserver),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        f"--advertise-address={network.advertise_address if network else '127.0.0.1'}",
        f"--secure-port={secure_port}",
        f"--cert-dir={pki.directory}",
        f"--tls-cert-file={pki.apiserver_cert}", f"--tls-private-key-file={pki.apiserver_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={network.service_cidr if network else SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        # No kube-controller-manager runs: no namespace gets its "default"
        # ServiceAccount (the ServiceAccount plugin would refuse every pod) and no
        # node-lifecycle controller lifts the not-ready taint TaintNodesByCondition
        # puts on every new Node (nothing could ever be scheduled).
        # (With a cluster network kube-controller-manager runs and pods need their
        # in-cluster token: only the taint plugin stays off.)
        "--disable-admission-plugins=" + (
            "TaintNodesByCondition" if network else "ServiceAccount,TaintNodesByCondition"),
        # Delegated authentication of kube-scheduler (and any aggregated server)
        # reads this CA from kube-system/extension-apiserver-authentication.
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        # The kubernetes Service must not list a loopback endpoint (it fails validation);
        # with a cluster network it lists the advertised address (in-cluster clients).
        *(_network_args(pki, network) if network else ["--endpoint-reconciler-type=none"]),
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
        *extra,
    ]


def _network_args(pki: ClusterPKI, network: ClusterNetwork) -> list[str]:
    return ["--endpoint-reconciler-type=lease",
            # apiserver -> kubelet (logs, exec, port-forward) with a client certificate the
            # kubelets' x509 authentication accepts; nodes by their InternalIP
            f"--kubelet-client-certificate={pki.kubelet_client_cert}",
            f"--kubelet-client-key={pki.kubelet_client_key}",
            "--kubelet-preferred-address-types=InternalIP"]


def scheduler_argv(scheduler: Path, config: Path, kubeconfig: Path, secure_port: int,
                   extra: Sequence[str] = ()) -> list[str]:
    return [
        str(scheduler), f"--config={config}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={secure_port}",
        "--v=2",
        *extra,
    ]


def kwok_argv(kwok: Path, kubeconfig: Path, server_port: int, label_selector: str,
              extra: Sequence[str] = ()) -> list[str]:
    return [
        str(kwok), f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-label-selector={label_selector}",
        f"--server-address=127.0.0.1:{server_port}",
        "--node-ip=127.0.0.1",
        *extra,
    ]


#: Controllers the local kube-controller-manager runs: the defaults minus node IPAM (pods
#: get their IPs from CNI, no podCIDR) and node lifecycle (it would taint kwok nodes and
#: real nodes that a test stops, and evict their pods; localnode lifts the not-ready taint).
KCM_CONTROLLERS = "*,-nodeipam,-nodelifecycle"


def controller_manager_argv(kcm: Path, pki: ClusterPKI, kubeconfig: Path, secure_port: int,
                            extra: Sequence[str] = (), *, pod_cidr: str = "",
                            service_cidr: str = SERVICE_CIDR) -> list[str]:
    """With ``pod_cidr``, node IPAM runs too: every Node gets a /24 of it (spec.podCIDR),
    for a default network that takes its range from there."""
    ipam = [f"--controllers={KCM_CONTROLLERS.replace(',-nodeipam', '')}",
            "--allocate-node-cidrs=true", f"--cluster-cidr={pod_cidr}",
            "--node-cidr-mask-size=24", f"--service-cluster-ip-range={service_cidr}"
            ] if pod_cidr else [f"--controllers={KCM_CONTROLLERS}"]
    return [
        str(kcm), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials=false",
        *ipam,
        "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={secure_port}",
        # Deployments/StatefulSets react within a second, not after the default backoffs
        "--concurrent-gc-syncs=5",
        "--v=1",
        *extra,
    ]
