# tests: backend services
edge_add_test(backend_discovery_test SOURCES discovery_service_test.cc LIBS edge_backend LABELS unit)
