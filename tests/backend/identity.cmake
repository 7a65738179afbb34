# tests: backend identity
