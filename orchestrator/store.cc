#include "orchestrator/store.h"

#include <mutex>
#include <set>
#include <utility>

#include "common/sqlite.h"

namespace edge::orchestrator {

std::string_view applyActionName(ApplyOutcome::Action a) {
  switch (a) {
    case ApplyOutcome::Action::kCreated:
      return "created";
    case ApplyOutcome::Action::kUpdated:
      return "updated";
    case ApplyOutcome::Action::kUnchanged:
      return "unchanged";
  }
  return "created";
}

namespace {

// Marks the file as ours ("EdgS"), so a stray SQLite file of another program at the
// same path is refused instead of having tables added to it.
constexpr int32_t kApplicationId = 0x45646753;
// Bump with a migration when the schema changes.
constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE services (
  name TEXT PRIMARY KEY,
  current_generation INTEGER NOT NULL CHECK (current_generation > 0),
  deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);
CREATE TABLE generations (
  name TEXT NOT NULL REFERENCES services (name),
  generation INTEGER NOT NULL CHECK (generation > 0),
  applied_at_ns INTEGER NOT NULL,
  manifest_json TEXT NOT NULL,
  PRIMARY KEY (name, generation)
) WITHOUT ROWID;
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE store (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL
);
INSERT INTO store (id, revision) VALUES (1, 0);
)sql";

using sqlite::Stmt;

sqlite::FileSpec fileSpec() {
  sqlite::FileSpec spec;
  spec.what = "state store";
  spec.kind = "an Edgecloud state store";
  spec.program = "edged";
  spec.example = "<data-dir>/state.db";
  spec.application_id = kApplicationId;
  spec.schema_version = kSchemaVersion;
  spec.schema = kSchema;
  spec.pragmas = "PRAGMA foreign_keys = ON";
  spec.not_ours_hint = "choose another data dir";
  spec.newer_hint = ", or move the file away to start with an empty desired state";
  return spec;
}

int64_t toNanos(WallTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

WallTime fromNanos(int64_t ns) {
  return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace

struct StateStore::Impl {
  Impl(sqlite::Db db, Clock& clock) : db(std::move(db)), clock(clock) {}

  sqlite::Db db;  // declared before the statements: they are finalised first
  Clock& clock;
  std::mutex mu;
  int64_t revision = 0;

  Stmt select_service, max_generation, previous_generation, upsert_service, insert_generation,
      select_generation, select_live, select_history, mark_deleted, bump_revision, select_revision,
      put_meta, get_meta;

  Status prepareAll() {
    std::pair<Stmt*, const char*> all[] = {
        {&select_service, "SELECT current_generation, deleted FROM services WHERE name = ?1"},
        {&max_generation, "SELECT MAX(generation) FROM generations WHERE name = ?1"},
        {&previous_generation,
         "SELECT MAX(generation) FROM generations WHERE name = ?1 AND generation < ?2"},
        {&upsert_service,
         "INSERT INTO services (name, current_generation, deleted) VALUES (?1, ?2, 0) "
         "ON CONFLICT (name) DO UPDATE SET current_generation = excluded.current_generation, "
         "deleted = 0"},
        {&insert_generation,
         "INSERT INTO generations (name, generation, applied_at_ns, manifest_json) "
         "VALUES (?1, ?2, ?3, ?4)"},
        {&select_generation,
         "SELECT applied_at_ns, manifest_json FROM generations WHERE name = ?1 AND "
         "generation = ?2"},
        {&select_live,
         "SELECT s.name, g.generation, g.applied_at_ns, g.manifest_json FROM services s "
         "JOIN generations g ON g.name = s.name AND g.generation = s.current_generation "
         "WHERE s.deleted = 0 ORDER BY s.name"},
        {&select_history,
         "SELECT generation, applied_at_ns, manifest_json FROM generations WHERE name = ?1 "
         "ORDER BY generation DESC"},
        {&mark_deleted, "UPDATE services SET deleted = 1 WHERE name = ?1"},
        {&bump_revision, "UPDATE store SET revision = revision + 1 WHERE id = 1"},
        {&select_revision, "SELECT revision FROM store WHERE id = 1"},
        {&put_meta,
         "INSERT INTO meta (key, value) VALUES (?1, ?2) "
         "ON CONFLICT (key) DO UPDATE SET value = excluded.value"},
        {&get_meta, "SELECT value FROM meta WHERE key = ?1"},
    };
    for (auto& [stmt, sql] : all) RETURN_IF_ERROR(stmt->prepare(db, sql));
    return Status::ok();
  }

  // Counts one revision and commits `txn`.
  Status commitChange(sqlite::Transaction& txn) {
    RETURN_IF_ERROR(Stmt::Use(bump_revision).run());
    RETURN_IF_ERROR(txn.commit());
    ++revision;
    return Status::ok();
  }

  struct ServiceRow {
    int64_t current_generation = 0;
    bool deleted = false;
  };

  Result<std::optional<ServiceRow>> serviceRow(const std::string& name) {
    Stmt::Use u(select_service);
    u.bind(1, name);
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) return std::optional<ServiceRow>();
    return std::optional<ServiceRow>(ServiceRow{u.int64(0), u.int64(1) != 0});
  }

  Result<int64_t> maxGeneration(const std::string& name) {
    Stmt::Use u(max_generation);
    u.bind(1, name);
    ASSIGN_OR_RETURN(bool row, u.step());
    return row && !u.isNull(0) ? u.int64(0) : 0;
  }

  // A stored document that does not parse is a fault of the store (or of an upgrade
  // that narrowed the schema), never the caller's input.
  static Result<ServiceRecord> makeRecord(std::string name, int64_t generation, int64_t at_ns,
                                          std::string json) {
    auto parsed = parseManifests(json, "stored manifest", ManifestOrigin::kStored);
    if (!parsed.isOk() || parsed->size() != 1) {
      return Status::internal(
          "state store: the stored manifest of service \"" + name + "\" generation " +
          std::to_string(generation) +
          " no longer parses: " + (parsed.isOk() ? "not one document" : parsed.status().message()));
    }
    ServiceRecord r;
    r.name = std::move(name);
    r.generation = generation;
    r.applied_at = fromNanos(at_ns);
    r.manifest_json = std::move(json);
    r.manifest = std::move((*parsed)[0]);
    return r;
  }

  Result<std::string> generationJson(const std::string& name, int64_t generation) {
    Stmt::Use u(select_generation);
    u.bind(1, name).bind(2, generation);
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) {
      return Status::internal("state store: service \"" + name + "\" lost its generation " +
                              std::to_string(generation));
    }
    return u.text(1);
  }

  Result<ServiceRecord> generationRecord(const std::string& name, int64_t generation) {
    Stmt::Use u(select_generation);
    u.bind(1, name).bind(2, generation);
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) {
      return Status::notFound("service \"" + name + "\" has no generation " +
                              std::to_string(generation));
    }
    return makeRecord(name, generation, u.int64(0), u.text(1));
  }

  // The live service, or kNotFound saying whether it never existed or was removed.
  Result<ServiceRow> liveService(const std::string& name) {
    ASSIGN_OR_RETURN(auto row, serviceRow(name));
    if (!row) return Status::notFound("no service \"" + name + "\"");
    if (row->deleted) {
      return Status::notFound("service \"" + name + "\" was removed (its last generation was " +
                              std::to_string(row->current_generation) +
                              "; its history is kept: apply it again to bring it back)");
    }
    return *row;
  }

  Status writeGeneration(const std::string& name, int64_t generation, const std::string& json) {
    RETURN_IF_ERROR(Stmt::Use(upsert_service).bind(1, name).bind(2, generation).run());
    return Stmt::Use(insert_generation)
        .bind(1, name)
        .bind(2, generation)
        .bind(3, toNanos(clock.wallNow()))
        .bind(4, json)
        .run();
  }
};

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateStore::~StateStore() = default;

Result<std::unique_ptr<StateStore>> StateStore::open(const std::string& path, Clock& clock) {
  ASSIGN_OR_RETURN(sqlite::Db db, sqlite::Db::open(path, fileSpec()));
  auto impl = std::make_unique<Impl>(std::move(db), clock);
  RETURN_IF_ERROR(impl->prepareAll());
  {
    Stmt::Use u(impl->select_revision);
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) return Status::internal("state store: " + impl->db.path() + " has no revision row");
    impl->revision = u.int64(0);
  }
  return std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
}

Result<std::vector<ApplyOutcome>> StateStore::apply(const std::vector<ServiceManifest>& manifests,
                                                    bool dry_run) {
  // Everything that can be checked without the database is checked first, so bad
  // input never opens a transaction.
  std::vector<std::string> docs;
  std::vector<ServiceManifest> stored;  // what a later read gives back
  std::set<std::string> names;
  for (const auto& m : manifests) {
    if (!names.insert(m.name).second) {
      return Status::invalidArgument("service \"" + m.name + "\" is given twice in one apply");
    }
    std::string json = manifestToJson(m);
    // What is stored must read back, or the node could not restart from it.
    auto back = parseManifests(json, "service \"" + m.name + "\"");
    if (!back.isOk()) return back.status();
    docs.push_back(std::move(json));
    stored.push_back(std::move((*back)[0]));
  }

  std::lock_guard<std::mutex> lock(impl_->mu);
  sqlite::Transaction txn(impl_->db);
  RETURN_IF_ERROR(txn.begin());
  std::vector<ApplyOutcome> out;
  bool changed = false;
  for (size_t i = 0; i < manifests.size(); ++i) {
    const std::string& name = manifests[i].name;
    ASSIGN_OR_RETURN(auto row, impl_->serviceRow(name));
    if (row && !row->deleted) {
      ASSIGN_OR_RETURN(std::string current, impl_->generationJson(name, row->current_generation));
      // Text first. The parsed comparison keeps a document stored by an older build (whose
      // canonical text may differ) from counting as a change; a stored document that no
      // longer parses counts as changed, so applying again repairs it.
      bool same = current == docs[i];
      if (!same) {
        auto parsed = parseManifests(current, "stored manifest", ManifestOrigin::kStored);
        same = parsed.isOk() && parsed->size() == 1 && (*parsed)[0] == stored[i];
      }
      if (same) {
        out.push_back({name, row->current_generation, ApplyOutcome::Action::kUnchanged});
        continue;
      }
    }
    ASSIGN_OR_RETURN(int64_t last, impl_->maxGeneration(name));
    RETURN_IF_ERROR(impl_->writeGeneration(name, last + 1, docs[i]));
    changed = true;
    out.push_back(
        {name, last + 1,
         row && !row->deleted ? ApplyOutcome::Action::kUpdated : ApplyOutcome::Action::kCreated});
  }
  // A dry run went through the same statements, so it fails exactly where a real
  // apply would; the guard rolls it back.
  if (changed && !dry_run) RETURN_IF_ERROR(impl_->commitChange(txn));
  return out;
}

Result<std::vector<ServiceRecord>> StateStore::list() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<ServiceRecord> out;
  Stmt::Use u(impl_->select_live);
  while (true) {
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) break;
    ASSIGN_OR_RETURN(ServiceRecord r,
                     Impl::makeRecord(u.text(0), u.int64(1), u.int64(2), u.text(3)));
    out.push_back(std::move(r));
  }
  return out;
}

Result<ServiceRecord> StateStore::get(const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  ASSIGN_OR_RETURN(auto row, impl_->liveService(name));
  return impl_->generationRecord(name, row.current_generation);
}

Result<std::vector<ServiceRecord>> StateStore::history(const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<ServiceRecord> out;
  Stmt::Use u(impl_->select_history);
  u.bind(1, name);
  while (true) {
    ASSIGN_OR_RETURN(bool row, u.step());
    if (!row) break;
    ASSIGN_OR_RETURN(ServiceRecord r, Impl::makeRecord(name, u.int64(0), u.int64(1), u.text(2)));
    out.push_back(std::move(r));
  }
  if (out.empty()) return Status::notFound("no service \"" + name + "\"");
  return out;
}

Result<ServiceRecord> StateStore::rollback(const std::string& name, std::optional<int64_t> to) {
  if (to && *to < 1) {
    return Status::invalidArgument("rollback of \"" + name + "\": generation " +
                                   std::to_string(*to) + " does not exist; generations start at 1");
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  sqlite::Transaction txn(impl_->db);
  RETURN_IF_ERROR(txn.begin());
  ASSIGN_OR_RETURN(auto row, impl_->liveService(name));
  int64_t current = row.current_generation;
  int64_t target = 0;
  if (to) {
    target = *to;
  } else {
    Stmt::Use u(impl_->previous_generation);
    u.bind(1, name).bind(2, current);
    ASSIGN_OR_RETURN(bool found, u.step());
    if (!found || u.isNull(0)) {
      return Status::failedPrecondition("service \"" + name + "\" has no generation before " +
                                        std::to_string(current) + " to roll back to");
    }
    target = u.int64(0);
  }
  auto old = impl_->generationRecord(name, target);
  if (!old.isOk() && old.status().code() == StatusCode::kNotFound) {
    ASSIGN_OR_RETURN(int64_t last, impl_->maxGeneration(name));
    return Status::notFound("service \"" + name + "\" has no generation " + std::to_string(target) +
                            " (it has 1.." + std::to_string(last) + ")");
  }
  if (!old.isOk()) return old.status();
  ASSIGN_OR_RETURN(ServiceRecord now, impl_->generationRecord(name, current));
  // Rolling back to what already runs changes nothing, as an unchanged apply.
  if (now.manifest_json == old->manifest_json) return now;
  ASSIGN_OR_RETURN(int64_t last, impl_->maxGeneration(name));
  RETURN_IF_ERROR(impl_->writeGeneration(name, last + 1, old->manifest_json));
  ASSIGN_OR_RETURN(ServiceRecord fresh, impl_->generationRecord(name, last + 1));
  RETURN_IF_ERROR(impl_->commitChange(txn));
  return fresh;
}

Result<int64_t> StateStore::remove(const std::string& name, bool dry_run) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  sqlite::Transaction txn(impl_->db);
  RETURN_IF_ERROR(txn.begin());
  ASSIGN_OR_RETURN(auto row, impl_->liveService(name));
  RETURN_IF_ERROR(Stmt::Use(impl_->mark_deleted).bind(1, name).run());
  if (!dry_run) RETURN_IF_ERROR(impl_->commitChange(txn));
  return row.current_generation;
}

int64_t StateStore::revision() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->revision;
}

Status StateStore::putMeta(const std::string& key, const std::string& value) {
  if (key.empty()) return Status::invalidArgument("state store: meta key is empty");
  std::lock_guard<std::mutex> lock(impl_->mu);
  // Meta is not desired state: it does not move revision(), so writing a node fact
  // does not wake the watchers of the service list.
  return Stmt::Use(impl_->put_meta).bind(1, key).bind(2, value).run();
}

Result<std::optional<std::string>> StateStore::getMeta(const std::string& key) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Stmt::Use u(impl_->get_meta);
  u.bind(1, key);
  ASSIGN_OR_RETURN(bool row, u.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(u.text(0));
}

}  // namespace edge::orchestrator
