# tests: backend services
