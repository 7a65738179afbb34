target_sources(edge_backend PRIVATE store.cc)
