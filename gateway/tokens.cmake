# Tokens: verifying callers' bearer tokens against an issuer's JWKS (cached), obtaining
# service tokens (client_credentials) or signing them with a shared account key.
add_library(edge_gateway_tokens STATIC token_verifier.cc token_source.cc)
target_include_directories(edge_gateway_tokens PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_gateway_tokens PUBLIC edge_common
  PRIVATE nlohmann_json::nlohmann_json Threads::Threads)
