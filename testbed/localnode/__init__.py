"""Real local Kubernetes nodes (containerd + kubelet in their own network namespaces).

Entry point: :class:`localnode.node.Node`. Images come from Debian's busybox-static
(:mod:`localnode.images`); see docs/node.md.
"""
