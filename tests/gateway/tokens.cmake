# tests: gateway tokens (verifier, JWKS cache, cached token source, local account signer)
edge_add_test(gateway_tokens_test SOURCES tokens_test.cc
  LIBS edge_gateway_tokens edge_common LABELS unit)
