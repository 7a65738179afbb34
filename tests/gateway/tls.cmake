# tests: gateway node-to-node TLS (socketpairs and loopback only). node_tls.cc is compiled
# in directly so this test does not wait for the rest of edge_gateway to build.
edge_add_test(gateway_node_tls_test SOURCES node_tls_test.cc ${PROJECT_SOURCE_DIR}/gateway/node_tls.cc
  LIBS edge_discovery edge_common OpenSSL::SSL OpenSSL::Crypto Threads::Threads LABELS unit)
