target_sources(edge_gateway PRIVATE relay_placeholder.cc)
