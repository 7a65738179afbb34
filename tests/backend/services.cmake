# tests: backend services
edge_add_test(backend_discovery_test SOURCES discovery_service_test.cc LIBS edge_backend LABELS unit)
edge_add_test(backend_metrics_test SOURCES backend_metrics_test.cc LIBS edge_backend LABELS unit)
