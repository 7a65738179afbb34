# Route table, load balancer, retry/outlier/breaker policies and gateway metrics: pure
# logic on a Clock, no sockets (route_table.h, upstream.h, load_balancer.h, resilience.h,
# gateway_metrics.h).
add_library(edge_gateway_resilience STATIC route_table.cc upstream.cc load_balancer.cc
  resilience.cc gateway_metrics.cc)
target_include_directories(edge_gateway_resilience PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_gateway_resilience PUBLIC edge_common edge_identity)
