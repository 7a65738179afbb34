# Node-to-node mutual TLS: certificates bound to node ids, TLS transports for the data path.
add_library(edge_gateway_tls STATIC node_tls.cc)
target_include_directories(edge_gateway_tls PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_gateway_tls PUBLIC edge_gateway_data edge_identity edge_common
  PRIVATE OpenSSL::SSL OpenSSL::Crypto)
