#include "backend/store.h"

namespace edge::backend {

// Replaced by the real dispatcher (sqlite:/etcd:) with the store implementations.
Result<StorePtr> openStore(const std::string& url) {
  return Status::unimplemented("store \"" + url + "\": no store implementation is built yet");
}

}  // namespace edge::backend
