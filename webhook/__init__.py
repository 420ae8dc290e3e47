"""tke-eni-ip-webhook: a mutating admission webhook that adds the ENI IP
request (``tke.cloud.tencent.com/eni-ip: 1``) to every new pod that will take
an ENI IP, so kube-scheduler counts it and the scheduler extender sees it.
TKE names its objects ``add-pod-eni-ip-limit-webhook``.

Modules: ``review`` (AdmissionReview wire format), ``decide`` (pure: the
decision and its JSONPatch), ``warnings`` (claim annotations a user should
fix), ``app`` (Flask), ``config`` (settings), ``metrics``, ``logs``,
``pki`` + ``provision`` (the ``certs`` subcommand), ``server`` (TLS),
``cli``. Documented in docs/webhook.md.
"""
