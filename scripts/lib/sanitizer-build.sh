# Sourced by scripts/test.sh --sanitize and scripts/fuzz.sh: the one sanitizer build both
# use, so CI compiles it once. clang with ASan+UBSan, and libFuzzer's coverage
# instrumentation in every library (EDGE_FUZZ=ON), so the same objects serve the test
# suite under the sanitizers and the fuzz targets. Assertions stay on (no NDEBUG); line
# tables only, for stack traces.
#
# -O0 by default: on 2 cores the whole build takes 422 s at -O0 against about 1,000 s at
# -O1, and the sanitized suite runs as fast (154 s against 142 s for the integration
# tests). The fuzz targets execute about 5x fewer inputs a second at -O0, which CI's 20 s
# smoke run can afford; a long campaign sets EDGE_SANITIZER_OPT=-O1 (and a build dir of
# its own with EDGE_SANITIZER_BUILD_DIR).
sanitizer_build_dir=${EDGE_SANITIZER_BUILD_DIR:-build-asan}
sanitizer_opt=${EDGE_SANITIZER_OPT:--O0}

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
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$sanitizer_opt -gline-tables-only" \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$sanitizer_opt -gline-tables-only" "${@:2}" >/dev/null
}
