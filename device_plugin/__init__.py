"""The kubelet device plugin for ``tke.cloud.tencent.com/eni-ip``.

It tells the kubelet how many ENI IPs this node's pods may use:
capacity = (ENIs − 1) × (IPs per ENI − 1), lowered by an operator cap; the
devices usable right now are Healthy, the rest of capacity Unhealthy.

Layers: ``capacity``/``devices`` are pure; ``state`` is the thread-safe
holder that ListAndWatch streams from (and the ``CapacityFeed`` port a node
agent pushes into); ``servicer`` is the gRPC service; ``kubelet`` the
registration and socket helpers; ``manager`` the serve → dial → register →
watch loop; ``cli`` the console script ``tke-eni-device-plugin``.
"""
