"""A real local Kubernetes control plane for tests and the local demo.

etcd + kube-apiserver (+ kube-scheduler, + kwok fake nodes) built from the Go
module proxy by ``hack/k8s/build.sh`` and run as local processes on loopback.
Entry points: :class:`localcluster.controlplane.ControlPlane`,
:func:`localcluster.binaries.k8s_binaries`, the ``tke-localcluster`` CLI.
"""
