"""What the agent learns from the cluster (its VpcIPs and VpcENIs, pods, the subnet
status) and the Events it sends. The data plane and the pool never import these."""
