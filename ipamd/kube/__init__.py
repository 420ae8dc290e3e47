"""The only ipamd modules that talk to the Kubernetes API: a thin JSON REST
client (``api``), list+watch caches (``informer``), typed CRD writes
(``crds``), events (``events``), the Lease (``lease``) and node/ConfigMap
writes (``objects``)."""
