"""kube-scheduler extender for TKE VPC-CNI (``tke-eni-ip-scheduler``).

Layers, innermost first (only the outer ones do I/O):

* ``pod``, ``snapshot``, ``decide``: pure. A pod's facts, an immutable view of
  the cluster state, and the filter / prioritize rules over it.
* ``store``: folds watch events (plain dicts) into snapshots, copy-on-write,
  thread-safe; still no I/O.
* ``wire``: the ExtenderArgs / ExtenderFilterResult / HostPriorityList JSON.
* ``watch``: Kubernetes list+watch loops feeding the store.
* ``app``: the Flask app (verbs, health, metrics); ``cli``: config and the
  two listeners; ``tlsserve`` + ``tlscontext``: the WSGI server (cheroot) with
  mutual TLS, certificate reload and slow-client limits, free of extender logic.

It never talks to the cloud and imports no other component.
"""
