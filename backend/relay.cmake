# Signaling API (tickets, SEP/BEP placement) and the relay server (SEP/BEP): docs/relay.md
target_sources(edge_backend PRIVATE signaling.cc relay_server.cc)
