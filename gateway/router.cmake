# ServiceRouter: the gateway's per-request control plane (gateway/router.h), joining the
# route table, load balancer, retry policy, token checks and the node's hooks.
target_sources(edge_gateway PRIVATE router.cc)
