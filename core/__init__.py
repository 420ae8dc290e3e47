"""The pure shared core: names users type, ids, ENI limits, instance types,
durations and CIDR arithmetic. No I/O and no I/O library (import-linter
enforces it), so every component can share it without dragging in gRPC,
Kubernetes, Flask, pyroute2 or the cloud SDK."""
