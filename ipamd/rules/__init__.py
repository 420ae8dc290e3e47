"""ipamd's rules: pure decisions over records (claims and their expiry, the warm pool,
subnet choice, provider ids, reading CRD records); no Kubernetes or cloud I/O."""
