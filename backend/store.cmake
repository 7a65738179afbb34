# Store: openStore() (store.cc), SqliteStore (the default), EtcdStore (etcd's JSON gateway).
target_sources(edge_backend PRIVATE store.cc sqlite_store.cc etcd_store.cc)
