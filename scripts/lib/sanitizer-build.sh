# Sourced by scripts/test.sh --sanitize and scripts/fuzz.sh: the one sanitizer build both
# use, so CI compiles it once. clang with ASan+UBSan, and libFuzzer's coverage
# instrumentation in every library (EDGE_FUZZ=ON), so the same objects serve the test
# suite under the sanitizers and the fuzz targets. -O1 keeps the sanitized tests quick;
# assertions stay on (no NDEBUG); line tables only, for stack traces.
sanitizer_build_dir=${EDGE_SANITIZER_BUILD_DIR:-build-asan}

# clang and its sanitizer/libFuzzer runtimes are only needed here, so install-deps.sh
# leaves them out of the normal build.
sanitizer_install_clang() {
  local p missing=()
  for p in clang libclang-rt-14-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (the sanitizer and fuzz build)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# sanitizer_configure DIR: configures DIR (re-running it with the same arguments is a
# no-op for ninja, so test.sh and fuzz.sh can both call it).
sanitizer_configure() {
  CC=clang CXX=clang++ cmake -S . -B "$1" -G Ninja -DEDGE_FUZZ=ON -DEDGE_WERROR=ON -DEDGE_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" "${@:2}" >/dev/null
}
