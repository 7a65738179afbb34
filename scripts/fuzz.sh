#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan+UBSan) in build-asan/ — the same
# sanitizer build `scripts/test.sh --sanitize` makes (scripts/lib/sanitizer-build.sh), so CI
# compiles it once — and runs
# each for a while from its seed corpus, after replaying its regression inputs. Fails
# when any target crashes, leaks, hangs (> 5 s on one input) or breaks a property; the
# input that did it is saved under build-asan/fuzz-runs/<target>/ and named in the output.
#
#   scripts/fuzz.sh                        # every target, 30 s each (the CI run)
#   scripts/fuzz.sh --seconds 600          # longer
#   scripts/fuzz.sh manifest_fuzz          # one target
#
# The corpus each run grows is kept in build-asan/fuzz-runs/<target>/corpus, so successive
# runs start where the last one stopped. Longer campaigns: tests/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/fuzz.sh [--seconds N] [--build-dir DIR] [target...]" >&2
  echo "targets: manifest_fuzz docker_create_fuzz config_fuzz http_api_fuzz discovery_fuzz discovery_wire_fuzz backend_fuzz http1_fuzz (default: all)" >&2
  exit 2
}

source "$(dirname "$0")/lib/sanitizer-build.sh"
seconds=30
build=$sanitizer_build_dir
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds)
      [ $# -ge 2 ] || usage
      seconds="$2"
      shift 2
      ;;
    --build-dir)
      [ $# -ge 2 ] || usage
      build="$2"
      shift 2
      ;;
    -h | --help) usage ;;
    -*)
      echo "fuzz.sh: unknown option $1" >&2
      usage
      ;;
    *)
      targets+=("$1")
      shift
      ;;
  esac
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: --seconds wants a positive whole number, got '$seconds'" >&2
  exit 2
fi
if [ ${#targets[@]} -eq 0 ]; then
  targets=(manifest_fuzz docker_create_fuzz config_fuzz http_api_fuzz discovery_fuzz discovery_wire_fuzz backend_fuzz http1_fuzz)
fi
for t in "${targets[@]}"; do
  if [ ! -d "tests/fuzz/corpus/$t" ]; then
    echo "fuzz.sh: no target '$t' (no tests/fuzz/corpus/$t); known: manifest_fuzz docker_create_fuzz config_fuzz http_api_fuzz discovery_fuzz discovery_wire_fuzz backend_fuzz http1_fuzz" >&2
    exit 2
  fi
done

scripts/install-deps.sh
sanitizer_install_clang
sanitizer_configure "$build"
ninja -C "$build" -j "$(nproc)" "${targets[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

dict_of() {
  case "$1" in
    manifest_fuzz) echo tests/fuzz/dicts/manifest.dict ;;
    docker_create_fuzz) echo tests/fuzz/dicts/docker_create.dict ;;
    config_fuzz) echo tests/fuzz/dicts/config.dict ;;
    http_api_fuzz) echo tests/fuzz/dicts/http_api.dict ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  bin="$build/fuzz/$t"
  work="$build/fuzz-runs/$t"
  out="$work/fuzz.log"
  mkdir -p "$work/corpus"
  regress="tests/fuzz/regressions/$t"
  if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    echo "== $t: replaying $regress" >&2
    if ! timeout -k 5 120 "$bin" -runs=0 -timeout=5 "$regress" >"$work/regressions.log" 2>&1; then
      grep -E "ERROR|SUMMARY|property failed|Running:" "$work/regressions.log" | tail -5 >&2 || true
      echo "fuzz.sh: $t: a regression input fails again (full output: $work/regressions.log)" >&2
      failed+=("$t")
      continue
    fi
  fi
  echo "== $t: fuzzing ${seconds}s" >&2
  dict=$(dict_of "$t")
  # The first corpus dir receives the new inputs; the seeds stay read-only in git.
  # timeout(1) as well: a hanging input can also hang libFuzzer's report of it.
  if timeout -k 5 $((seconds + 120)) "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=5 -rss_limit_mb=2048 \
    -print_final_stats=1 ${dict:+-dict="$dict"} -artifact_prefix="$work/" \
    "$work/corpus" "tests/fuzz/corpus/$t" >"$out" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$out" | tr '\n' ' ' >&2
    echo "corpus=$(ls "$work/corpus" | wc -l)" >&2
  else
    grep -E "ERROR|SUMMARY|property failed|Test unit written" "$out" | tail -8 >&2 || true
    echo "fuzz.sh: $t FAILED (full output: $out)" >&2
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failing targets: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${targets[*]}: no crash in ${seconds}s each" >&2
