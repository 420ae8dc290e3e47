"""tke-eni-ipamd: the cluster brain. The only holder of cloud write
credentials: creates and attaches ENIs, assigns/migrates/unassigns private
IPs, keeps static-IP claims and the subnet set (docs/ipamd.md).

Layers: pure decisions (``subnets``, ``pool``, ``claims``, ``providerid``),
the Kubernetes client layer (``ipamd.kube``: the only modules that talk to
the API), the cloud port (``cloud.ports.CloudApi``), and the controllers
that wire them (``nodes``, ``claimctl``, ``subnetctl``, ``reconcile``)."""
