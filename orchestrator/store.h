// StateStore: the node's desired state, persisted in SQLite (WAL) in the data dir.
//
// Desired state is written here BEFORE anything is started, so after a crash, a
// `kill -9` or a reboot without network, edged rebuilds every workload from this file
// alone. Every change is one transaction: an apply of several services is all or
// nothing. Each service keeps its history of generations (1, 2, ...) for rollback;
// a deleted service keeps its history until the name is applied again.
//
// Thread-safety: every method may be called from any thread; calls are serialised on
// one connection. Errors: kNotFound for an unknown service or generation, kInternal
// for a store fault (the message carries SQLite's), kInvalidArgument for bad input.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "orchestrator/manifest.h"

namespace edge::orchestrator {

struct ServiceRecord {
  std::string name;
  int64_t generation = 0;
  WallTime applied_at{};
  std::string manifest_json;  // the document as canonical JSON (manifestToJson)
  ServiceManifest manifest;   // parsed back from manifest_json
};

struct ApplyOutcome {
  std::string name;
  int64_t generation = 0;
  enum class Action { kCreated, kUpdated, kUnchanged } action = Action::kCreated;
};
std::string_view applyActionName(ApplyOutcome::Action a);  // "created"|"updated"|"unchanged"

class StateStore {
 public:
  // Opens (creating if needed) the database at `path`, e.g. <data-dir>/state.db, and
  // migrates its schema. A file that is not a store of ours is refused, not modified.
  static Result<std::unique_ptr<StateStore>> open(const std::string& path, Clock& clock);
  ~StateStore();

  // Applies every manifest in one transaction. A manifest equal to the current
  // generation (same canonical JSON) is left unchanged; otherwise a new generation is
  // written. `dry_run` computes the outcome and writes nothing.
  Result<std::vector<ApplyOutcome>> apply(const std::vector<ServiceManifest>& manifests,
                                          bool dry_run);

  // Current generation of every live service, sorted by name.
  Result<std::vector<ServiceRecord>> list();
  Result<ServiceRecord> get(const std::string& name);
  // Every generation of a service, newest first (also works after delete).
  Result<std::vector<ServiceRecord>> history(const std::string& name);

  // Makes the manifest of generation `to` (default: the one before the current) the
  // current one, as a new generation. kFailedPrecondition when there is no earlier one.
  Result<ServiceRecord> rollback(const std::string& name, std::optional<int64_t> to);

  // Removes the service from the desired state (history kept). kNotFound if absent.
  Result<int64_t> remove(const std::string& name, bool dry_run);

  // Increases by one with every committed change; lets watchers notice changes.
  int64_t revision();

  // Small key/value area for node facts that must survive restarts (node name, ports
  // assigned to instances, ...).
  Status putMeta(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> getMeta(const std::string& key);

 private:
  struct Impl;
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};
using StateStorePtr = std::unique_ptr<StateStore>;

}  // namespace edge::orchestrator
