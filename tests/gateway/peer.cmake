# tests: gateway peer
