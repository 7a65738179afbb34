// EtcdCluster: real etcd processes (Debian's /usr/bin/etcd, or $EDGE_ETCD_BIN) on
// 127.0.0.1 for the store tests: one member or a cluster, each with free ports and a data
// dir under one temp dir, killed and removed by the destructor.
//
// etcd cannot listen on port 0, so ports are picked by binding and releasing them; a
// member that loses the race exits with "address already in use" and the whole start is
// retried on fresh ports.
//
// Thread-safety: none; one test drives it.
// Errors: kFailedPrecondition when the etcd binary is missing (the message says to run
// scripts/install-deps.sh); kUnavailable when a member does not come up, with the tail
// of its log.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace edge::backend::testing {

class EtcdCluster {
 public:
  static Result<std::unique_ptr<EtcdCluster>> start(int members);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "http://127.0.0.1:<port>" of member i.
  std::string clientUrl(int i) const;
  // Every member's client URL, comma-separated, as openStore's etcd: takes them.
  std::string clientUrls() const;

  // SIGKILL (no chance to flush anything) and wait for the process to go.
  void kill(int i);
  // Starts member i again on its data dir and ports; waits until it answers.
  Status restart(int i);
  // The index of the member that leads now, as the running members see it.
  Result<int> leader() const;
  // Deletes every key (between tests sharing one cluster).
  Status wipe();

  std::string logTail(int i) const;

 private:
  struct Member {
    std::string name, data_dir, log_path;
    int client_port = 0, peer_port = 0;
    pid_t pid = -1;
  };
  EtcdCluster() = default;
  Status spawn(int i, bool new_cluster);
  Status waitReady(int i);

  std::string dir_;
  std::string binary_;
  std::string initial_cluster_;
  std::vector<Member> members_;
};

}  // namespace edge::backend::testing
