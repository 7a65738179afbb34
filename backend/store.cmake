# Store: openStore() (store.cc), SqliteStore (the default), EtcdStore (etcd's JSON gateway).
add_library(edge_backend_store STATIC store.cc sqlite_store.cc etcd_store.cc)
target_include_directories(edge_backend_store PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(edge_backend_store PUBLIC edge_common nlohmann_json::nlohmann_json
  PRIVATE edge_sqlite Threads::Threads)
