# Identity (accounts, clients, users, node registration), the OAuth 2.0 token service with
# its signing-key ring, the token endpoint's rate limits, and their HTTP routes.
target_sources(edge_backend PRIVATE identity.cc tokens.cc rate_limit.cc identity_api.cc)
