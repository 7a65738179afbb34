#!/usr/bin/env bash
# The test command: installs what is missing, starts dockerd when none runs, builds
# everything with warnings as errors and runs every test — unit tests, then the
# integration tests (real dockerd, namespaces, cgroups; needs root).
#
#   scripts/test.sh              # -O2 build without debug info in build/ (benchmarks use it too)
#   scripts/test.sh --sanitize   # clang ASan+UBSan build in build-asan/ (scripts/lib/sanitizer-build.sh),
#                                # which scripts/fuzz.sh then reuses for the fuzz targets
#
# Debug info is kept to what stack traces need: full -g costs compile time and disk in
# every build, and CI builds two configurations on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
# -O2 as RelWithDebInfo, without -g (GCC 12's -O3 warns falsely on string concatenation).
cmake_args=(-DEDGE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG"
            "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -DNDEBUG")
sanitize=0
[ "${1:-}" = "--sanitize" ] && sanitize=1

scripts/install-deps.sh
scripts/check-format.sh
scripts/start-dockerd.sh

if [ "$sanitize" = 1 ]; then
  source scripts/lib/sanitizer-build.sh
  sanitizer_install_clang
  build=$sanitizer_build_dir
  sanitizer_configure "$build"
else
  cmake -S . -B "$build" -G Ninja "${cmake_args[@]}" >/dev/null
fi
t_build=$SECONDS
ninja -C "$build"
echo "test.sh: build of $build took $((SECONDS - t_build)) s"

# The integration tests must fail, not skip, when dockerd is unusable.
export EDGE_REQUIRE_DOCKER=1
# A skipped test (exit 77: tests/test_env.h) is not a passed one: ctest lists it under
# "The following tests did not run" and the run fails.
ctest_all() {
  local log=$build/ctest.log rc=0
  ctest --test-dir "$build" --no-tests=error --output-on-failure "$@" | tee "$log" || rc=$?
  if grep -A50 '^The following tests did not run' "$log"; then
    echo "test.sh: skipped tests count as failures" >&2
    return 1
  fi
  return "$rc"
}
t_unit=$SECONDS
ctest_all -L unit -j "$(nproc)"
echo "test.sh: unit tests took $((SECONDS - t_unit)) s"
# Under the sanitizers the Docker variants of the end-to-end tests are left out: it runs the
# same edged code as the light one (only the runtime driver differs, and its unit and
# conformance tests run under the sanitizers), and it costs minutes of CI time.
skip=()
[ "$sanitize" = 1 ] && skip=(-E '^(edged|gateway)_e2e_docker$')
# Two at a time: the multi-node scenarios (netns) are RUN_SERIAL and run alone, and the
# tests that share the host's dockerd take turns (RESOURCE_LOCK dockerd).
t_integration=$SECONDS
ctest_all -L integration -j "$(nproc)" "${skip[@]}"
echo "test.sh: integration tests took $((SECONDS - t_integration)) s"
