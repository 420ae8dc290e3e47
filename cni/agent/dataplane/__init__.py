"""The agent's data plane: netlink (links, addresses, routes, rules, per-ENI tables),
network namespaces and a pod's plumbing. It knows nothing of the cluster."""
