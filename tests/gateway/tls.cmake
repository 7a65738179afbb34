# tests: gateway node-to-node TLS (socketpairs and loopback only)
edge_add_test(gateway_node_tls_test SOURCES node_tls_test.cc
  LIBS edge_gateway_tls OpenSSL::SSL OpenSSL::Crypto LABELS unit)
