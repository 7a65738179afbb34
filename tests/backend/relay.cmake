# tests: backend relay (signaling API + relay server on loopback, SQLite store in /tmp)
edge_add_test(backend_relay_test SOURCES relay_test.cc
  LIBS edge_backend edge_common PkgConfig::HTTPLIB LABELS unit TIMEOUT 300)
