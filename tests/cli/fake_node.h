// A fake edged for edgectl's tests: the REST API of docs/api.md with canned answers, on
// a unix socket in a temp dir (path chosen at runtime), recording what it was sent.
//
// Thread-safety: handlers run on the server's threads; the recorded fields are read
// through the accessors, which lock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace edge::cli::testing {

struct Received {
  std::string method;
  std::string path;  // with the query
  std::map<std::string, std::string> headers;
  std::string body;
};

class FakeNode {
 public:
  FakeNode();  // listening when it returns
  ~FakeNode();

  std::string socketPath() const { return socket_; }
  std::string host() const { return "unix://" + socket_; }

  // Requests seen so far, oldest first.
  std::vector<Received> received() const;
  // Bytes of the last POST /api/v1/images/load body, and whether it came chunked.
  int64_t uploadedBytes() const;
  bool uploadWasChunked() const;

  // The followed log stream sends "line 1", then waits for releaseFollow() before it
  // sends "line 2" and ends: a test can see the first line arrive before the end.
  void releaseFollow();

 private:
  void record(Received r);

  std::string dir_;
  std::string socket_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> received_;
  int64_t uploaded_ = 0;
  bool chunked_ = false;
  bool released_ = false;
};

}  // namespace edge::cli::testing
