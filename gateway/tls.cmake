# node-to-node mutual TLS: certificates bound to node ids, TLS transports for the data path
target_sources(edge_gateway PRIVATE node_tls.cc)
target_link_libraries(edge_gateway PRIVATE OpenSSL::SSL)
