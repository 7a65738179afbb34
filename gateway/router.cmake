# ServiceRouter: the gateway's per-request control plane (gateway/router.h), joining the
# route table, load balancer, retry policy, token checks and the node's hooks.
add_library(edge_gateway STATIC router.cc)
target_include_directories(edge_gateway PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_gateway PUBLIC edge_gateway_data edge_gateway_resilience
  edge_gateway_tokens edge_gateway_tls edge_common PRIVATE nlohmann_json::nlohmann_json)
