# Identity (accounts, clients, users, node registration), the OAuth 2.0 token service with
# its signing-key ring, the token endpoint's rate limits, and their HTTP routes.
add_library(edge_backend_identity STATIC identity.cc tokens.cc rate_limit.cc identity_api.cc)
target_include_directories(edge_backend_identity PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_backend_identity PUBLIC edge_backend_store edge_backend_base
  edge_identity edge_common PRIVATE OpenSSL::Crypto Threads::Threads)
