# Relay client: holds the node's SEP, answers signals with BEP legs, dials BEPs (docs/relay.md)
target_sources(edge_gateway PRIVATE relay_client.cc)
