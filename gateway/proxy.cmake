# The gateway's data path: HTTP/1.1 parsing, the epoll loops, the reverse-proxy engine
# and a static router (docs in the headers: http1.h, event_loop.h, proxy.h,
# static_router.h), and edge-gateway, the standalone proxy the benchmark drives.
# Its own library under edge_gateway so that the data path, its tests and the benchmark
# binary depend on edge_common only (no httplib, no OpenSSL: TLS comes in through
# ProxyOptions' factories).
add_library(edge_gateway_data STATIC http1.cc event_loop.cc transport.cc proxy.cc
  static_router.cc)
target_include_directories(edge_gateway_data PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_gateway_data PUBLIC edge_common PRIVATE Threads::Threads)
target_link_libraries(edge_gateway PUBLIC edge_gateway_data)

add_executable(edge-gateway gateway_main.cc)
target_link_libraries(edge-gateway PRIVATE edge_gateway_data CLI11::CLI11)
