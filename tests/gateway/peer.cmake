# tests: gateway peer
edge_add_test(gateway_peer_test SOURCES peer_test.cc
  LIBS edge_gateway edge_common PkgConfig::HTTPLIB LABELS unit)
