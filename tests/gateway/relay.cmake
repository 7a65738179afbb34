# tests: gateway relay
