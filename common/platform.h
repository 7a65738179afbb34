// Facts about the host platform, named as OCI image configs and Go's GOARCH name them.
#pragma once

#include <string>

namespace edge {

// "amd64", "arm64", "arm", "riscv64", ... ("unknown" for anything else).
std::string hostArchitecture();

}  // namespace edge
