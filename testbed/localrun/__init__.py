"""The whole environment on one machine: emulated VPC, real control plane (scheduler wired
to our extender, controller manager), ipamd and the extender as processes started from
their deploy/ manifests, real nodes (containerd + kubelet) with our agent and device
plugin, and the ENI plumber that turns the emulator's attach calls into links.

``localrun.environment.Environment`` is the harness; ``tke-localcluster demo`` runs it in
the background (``localrun.supervisor``) and shows the guide's workloads (docs/local-run.md).
"""
