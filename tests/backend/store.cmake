# tests: backend store
