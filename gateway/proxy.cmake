# The data path of issue 6: HTTP/1.1 parsing, the epoll loops and the reverse-proxy engine
# (docs in the headers: http1.h, event_loop.h, proxy.h), and edge-gateway, the
# standalone proxy the benchmark drives.
target_sources(edge_gateway PRIVATE http1.cc)
