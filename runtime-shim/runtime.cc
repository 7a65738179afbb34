#include "runtime-shim/runtime.h"

#include <csignal>
#include <cstring>

namespace edge::runtime {

std::string_view containerStateName(ContainerState s) {
  switch (s) {
    case ContainerState::kCreated:
      return "created";
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kExited:
      return "exited";
  }
  return "unknown";
}

std::string_view eventTypeName(Event::Type t) {
  switch (t) {
    case Event::Type::kCreate:
      return "create";
    case Event::Type::kStart:
      return "start";
    case Event::Type::kExit:
      return "die";
    case Event::Type::kOom:
      return "oom";
    case Event::Type::kDestroy:
      return "destroy";
  }
  return "unknown";
}

std::string normalizeImageRef(const std::string& ref) {
  std::string r = ref;
  for (const char* prefix : {"docker.io/library/", "docker.io/", "index.docker.io/library/"}) {
    if (r.starts_with(prefix)) {
      r = r.substr(std::strlen(prefix));
      break;
    }
  }
  if (r.find('@') != std::string::npos) return r;
  // A tag is a ':' after the last '/' (a ':' before it belongs to a registry port).
  size_t slash = r.rfind('/');
  size_t colon = r.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    r += ":latest";
  }
  return r;
}

Result<int> parseSignal(const std::string& text) {
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
      {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
      {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
      {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
      {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
      {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
      {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
      {"PWR", SIGPWR},       {"SYS", SIGSYS}};
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() <= 2) {
    int n = std::stoi(text);
    if (n >= 1 && n <= 64) return n;
  }
  std::string name = text;
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.starts_with("SIG")) name = name.substr(3);
  for (const auto& [n, v] : kSignals) {
    if (name == n) return v;
  }
  return Status::invalidArgument("'" + text +
                                 "' is not a signal; use a name like SIGTERM or TERM, or a "
                                 "number 1..64");
}

}  // namespace edge::runtime
