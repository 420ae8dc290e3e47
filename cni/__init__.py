"""Runtime-facing side of the node: the ``tke-route-eni`` CNI shim (``cni.plugin``)
and the node agent's data plane (``cni.agent``)."""
