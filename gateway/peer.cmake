target_sources(edge_gateway PRIVATE peer_placeholder.cc)
