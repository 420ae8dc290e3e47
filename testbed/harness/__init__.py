"""Stand-ins and runners that tests/ and bench/ share: the peers the product talks to
(a kubelet's device manager), the daemons started as their console scripts (ipamd, the
scheduler extender), the emulated cloud world the ipamd tests and benchmark run in, and
bounded waits. Like the rest of the test bed it knows the product only by its public
interfaces: console scripts and their flags, the Kubernetes API with the wire names,
the kubelet's device-plugin gRPC API (generated from the kubelet's own proto)."""
