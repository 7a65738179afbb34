# tests: backend identity (accounts, clients, node registration, tokens, key rotation,
# rate limits) on the in-memory Store (memory_store.h), and their HTTP endpoints on SQLite
edge_add_test(backend_identity_test
  SOURCES identity_test.cc identity_api_test.cc
  LIBS edge_backend PkgConfig::HTTPLIB)
