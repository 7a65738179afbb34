# Signaling API (tickets, SEP/BEP placement) and the relay server (SEP/BEP): docs/relay.md
add_library(edge_backend_relay STATIC signaling.cc relay_server.cc)
target_include_directories(edge_backend_relay PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_backend_relay PUBLIC edge_backend_store edge_backend_base
  edge_backend_identity edge_identity edge_common PRIVATE OpenSSL::Crypto Threads::Threads)
