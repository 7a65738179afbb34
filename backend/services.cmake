target_sources(edge_backend PRIVATE http_util.cc discovery_service.cc geo.cc backend_server.cc
  backend_metrics.cc)
