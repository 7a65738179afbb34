# tests: the gateway's router (route, token, on-demand and retry decisions; no sockets)
edge_add_test(gateway_router_test SOURCES router_test.cc LIBS edge_gateway edge_common LABELS unit)
