# tests: gateway route table and resilience (pure logic on a FakeClock)
edge_add_test(gateway_route_table_test SOURCES route_table_test.cc LIBS edge_gateway_resilience LABELS unit)
edge_add_test(gateway_resilience_test SOURCES resilience_test.cc LIBS edge_gateway_resilience LABELS unit)
