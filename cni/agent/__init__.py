"""``tke-eni-agent``: the node agent (host network set-up, pod plumbing, IP
bookkeeping) that the ``tke-route-eni`` shim forwards CNI calls to."""
