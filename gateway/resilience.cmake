# route table, load balancer, retry/outlier/breaker policies and gateway metrics (pure logic)
target_sources(edge_gateway PRIVATE route_table.cc upstream.cc load_balancer.cc resilience.cc
  gateway_metrics.cc)
