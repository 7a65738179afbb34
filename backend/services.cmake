# What every backend area shares: the JSON error/auth helpers of the route modules
# (http_util.h: the only backend header with httplib in it, included by route files
# only) and geographic points and distances (geo.h).
add_library(edge_backend_base STATIC http_util.cc geo.cc)
target_include_directories(edge_backend_base PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_backend_base PUBLIC edge_common PkgConfig::HTTPLIB)
# Global discovery and registry (by account and proximity), and BackendServer, which
# wires identity, tokens, discovery and relays onto one HTTP server and calls nodes back
# over peer channels (edge_mesh).
add_library(edge_backend STATIC discovery_service.cc backend_server.cc backend_metrics.cc)
target_include_directories(edge_backend PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_backend PUBLIC edge_backend_store edge_backend_base
  edge_backend_identity edge_backend_relay edge_mesh edge_identity edge_common
  nlohmann_json::nlohmann_json PRIVATE Threads::Threads)
