# tests: gateway data path (HTTP/1.1 parser; the proxy engine on loopback sockets)
edge_add_test(gateway_http1_test SOURCES http1_test.cc LIBS edge_gateway_data LABELS unit)
edge_add_test(gateway_proxy_test SOURCES proxy_test.cc LIBS edge_gateway_data LABELS unit
  TIMEOUT 300)
