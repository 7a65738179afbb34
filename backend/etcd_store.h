// EtcdStore: the Store on an etcd v3.4+ cluster through its JSON gateway (POST
// /v3/kv/range, /v3/kv/txn), for a backend with several replicas sharing one state.
//
// Revisions are etcd's: a key's revision is its mod_revision, the store revision is
// header.revision (1 on a fresh etcd). A commit is one etcd txn, so it is atomic across
// replicas; its compares are mod_revision == N, or create_revision == 0 for "must not
// exist". list() pages through one snapshot (the revision of its first page).
//
// Endpoints: requests go to the last endpoint that answered; when it cannot be reached,
// the next one is tried. Reads fail over on any transport error. A commit fails over only
// when etcd cannot have applied it (no connection, no leader, proposal dropped); after a
// response is lost mid-way it returns kUnavailable saying the outcome is unknown, since
// a blind retry could apply it twice. Errors that say etcd is electing a leader are
// retried, all endpoints in turn, for up to EtcdOptions::retry_window.
//
// Thread-safety: every method may be called from any thread at once (each request has
// its own connection).
//
// Errors: as Store. kUnavailable names the endpoints and what each said; etcd's own
// errors ({"error": ..., "code": ...}) keep etcd's message and map its gRPC code. But
// the gateway sends those replies chunked with HTTP trailers, which Debian's
// cpp-httplib 0.11 cannot read: until common/http.cc copes, they arrive as a read
// failure (a read is then retried; a commit reports that its outcome is unknown). Hence
// everything etcd would refuse (empty keys, sizes) is refused here before sending.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/store.h"
#include "common/http.h"

namespace edge::backend {

struct EtcdOptions {
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  // etcd gives up on a request itself after ~7 s (5 s + two election timeouts).
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // How long a request keeps retrying across endpoints while etcd has no leader or none
  // of them can be reached; zero tries each endpoint once.
  std::chrono::milliseconds retry_window{std::chrono::seconds(5)};
  // Keys per range request of list(): bounded so a big listing is several small
  // replies, not one huge one.
  size_t page_size = 1000;
};

class EtcdStore final : public Store {
 public:
  // Parses "http://host:port[,http://host:port...]" (spaces around commas allowed).
  // kInvalidArgument for anything else, saying what is allowed.
  static Result<std::vector<http::Endpoint>> parseEndpoints(std::string_view urls);

  // Checks that one endpoint answers: kUnavailable, naming each endpoint and its error,
  // when none does.
  static Result<std::unique_ptr<EtcdStore>> open(std::vector<http::Endpoint> endpoints,
                                                 EtcdOptions options = {});
  ~EtcdStore() override;

  Result<KeyValue> get(std::string_view key) override;
  Result<std::vector<KeyValue>> list(std::string_view prefix, size_t limit = 0,
                                     std::string_view start_after = {}) override;
  Result<int64_t> commit(const std::vector<StoreOp>& ops) override;
  Result<int64_t> revision() override;
  std::string describe() const override;

 private:
  struct Impl;
  explicit EtcdStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edge::backend
