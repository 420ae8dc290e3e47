"""ipamd's controllers: each owns one kind of work (claims, nodes and their warm
pools, the subnet decision, the cloud's ENIs, reconcile, leaked ENIs) and writes through the
shared deps (ipamd.deps)."""
