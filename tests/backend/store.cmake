# tests: backend store. One conformance suite (store_conformance_test.cc) built twice: on
# SQLite (hermetic, unit) and on a real etcd it starts itself (integration; fails with a
# hint when /usr/bin/etcd is missing, so CI cannot skip it silently).
edge_add_test(store_sqlite_conformance_test SOURCES store_conformance_test.cc
  LIBS edge_backend_store LABELS unit)
# Links SQLite itself to write foreign and newer-schema files through its own connection.
edge_add_test(store_sqlite_test SOURCES store_sqlite_test.cc
  LIBS edge_backend_store SQLite::SQLite3 LABELS unit)

add_library(edge_etcd_harness STATIC etcd_harness.cc)
target_link_libraries(edge_etcd_harness PUBLIC edge_common)
edge_add_test(store_etcd_conformance_test SOURCES store_conformance_test.cc
  LIBS edge_backend_store edge_etcd_harness LABELS integration TIMEOUT 300)
target_compile_definitions(store_etcd_conformance_test PRIVATE EDGE_STORE_CONFORMANCE_ETCD)
edge_add_test(store_etcd_test SOURCES etcd_store_test.cc
  LIBS edge_backend_store edge_etcd_harness LABELS integration TIMEOUT 300)
