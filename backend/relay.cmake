target_sources(edge_backend PRIVATE relay_placeholder.cc)
