# tests: gateway relay (the relay client against a real relay backend on loopback)
edge_add_test(gateway_relay_test SOURCES relay_test.cc
  LIBS edge_gateway edge_backend edge_common PkgConfig::HTTPLIB LABELS unit TIMEOUT 300)
