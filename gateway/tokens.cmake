# tokens: verifying callers' bearer tokens (JWKS cache), obtaining and attaching service tokens
target_sources(edge_gateway PRIVATE token_verifier.cc token_source.cc)
