# tests: backend relay
