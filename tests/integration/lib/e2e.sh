# shellcheck shell=bash disable=SC2034  # sourced: ONLY, SELECTED, RESULT are the caller's
# e2e.sh: the preamble the end-to-end scripts share (backend_e2e.sh, cluster_e2e.sh,
# gateway_e2e.sh; edged_e2e.sh takes the skip and Docker rules). Sourced, not run.
#
# Exit statuses: 0 pass, 1 a scenario failed, 2 the run could not start (a binary or tool
# missing, bad arguments), 77 skipped (ctest shows "Skipped" and scripts/test.sh fails on
# it). A skip is only for a machine that cannot run the test at all (not root); once the
# test runs as root, a set-up failure (a namespace, a mount, dockerd) is a failure.
#
#   e2e_init NAME MAX ARGS...  parses [--only N[,N...]] [--keep] [-h|--help]; sets E2E_NAME,
#                              ONLY (default 1..MAX) and SELECTED (array of N); --help
#                              prints the script's header comment
#   e2e_skip WHY               prints SKIP: WHY and exits 77
#   e2e_need_root WHY          skips (77) unless root
#   e2e_need_bins NAME...      exits 2 unless every $NC_BIN/NAME is executable
#   e2e_need_tools CMD...      exits 2 unless every CMD is installed
#   e2e_docker_required        EDGE_REQUIRE_DOCKER is "1" (CI): no dockerd is a failure
#   e2e_need_docker            returns when dockerd answers; else fails (exit 1) when
#                              required, skips (77) when not
#   e2e_start_cluster          sources netns_cluster.sh, nc_init NAME; on EXIT runs the
#                              functions in E2E_CLEANUP (array) then nc_cleanup
#   log MSG...                 [hh:mm:ss.mmm] MSG
#   now_ms                     milliseconds since the epoch
#   wait_for SECONDS CMD...    runs CMD every 0.2 s until it succeeds (in this shell: it may
#                              set variables); 1 when SECONDS pass first
#   e2e_record N PASS|FAIL TEXT  RESULT[N] and the line "SCENARIO N PASS|FAIL: TEXT"
#   e2e_summary [EXTRA-FAILURE] prints every selected scenario's result; returns 1 when one
#                              did not pass (or EXTRA-FAILURE is non-empty)

E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_ROOT=$(cd "$E2E_LIB_DIR/../../.." && pwd)
BUILD=${EDGE_BUILD_DIR:-$E2E_ROOT/build}
export NC_BIN=$BUILD/bin
E2E_NAME=e2e
E2E_T0_MS=
ONLY=
SELECTED=()
E2E_CLEANUP=()
declare -gA RESULT=()

log() { echo "[$(date +%T.%3N)] $*"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

wait_for() {
  local deadline=$(($(date +%s%N) + $1 * 1000000000))
  shift
  until "$@"; do
    (($(date +%s%N) < deadline)) || return 1
    sleep 0.2
  done
}

e2e_init() {
  local name=$1 max=$2 script=$0
  shift 2
  E2E_NAME=$name
  E2E_T0_MS=$(now_ms)
  ONLY=$(seq -s, 1 "$max")
  while [ $# -gt 0 ]; do
    case $1 in
      --only)
        [ $# -ge 2 ] || { echo "$name: --only needs a value" >&2; exit 2; }
        ONLY=$2
        shift 2
        ;;
      --keep) export NC_KEEP=1; shift ;;
      -h | --help) sed -n '2,/^set -uo/p' "$script" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) echo "$name: unknown argument '$1' (allowed: --only N[,N...] --keep)" >&2; exit 2 ;;
    esac
  done
  if ! [[ $ONLY =~ ^[0-9]+(,[0-9]+)*$ ]] || [ -n "$(tr , '\n' <<<"$ONLY" | awk -v m="$max" '$1 < 1 || $1 > m')" ]; then
    echo "$name: --only '$ONLY': scenario numbers 1..$max, comma-separated" >&2
    exit 2
  fi
  IFS=, read -r -a SELECTED <<<"$ONLY"
}

e2e_skip() {
  echo "SKIP: $E2E_NAME: $*"
  exit 77
}

e2e_need_root() {
  [ "$(id -u)" -eq 0 ] || e2e_skip "needs root ($*)"
}

e2e_need_bins() {
  local b
  for b in "$@"; do
    if [ ! -x "$NC_BIN/$b" ]; then
      echo "$E2E_NAME: $NC_BIN/$b is not built (ninja $*)" >&2
      exit 2
    fi
  done
}

e2e_need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$E2E_NAME: $t is missing (scripts/install-deps.sh)" >&2; exit 2; }
  done
}

e2e_docker_required() { [ "${EDGE_REQUIRE_DOCKER:-}" = 1 ]; }

e2e_need_docker() {
  timeout 10 docker info >/dev/null 2>&1 && return 0
  if e2e_docker_required; then
    echo "FAIL: $E2E_NAME: no Docker Engine answers (EDGE_REQUIRE_DOCKER=1)" >&2
    exit 1
  fi
  e2e_skip "no Docker Engine answers (EDGE_REQUIRE_DOCKER=1 makes this a failure)"
}

e2e_cleanup() {
  local f
  for f in "${E2E_CLEANUP[@]}"; do "$f"; done
  nc_cleanup
}

e2e_start_cluster() {
  # shellcheck source=netns_cluster.sh
  . "$E2E_LIB_DIR/netns_cluster.sh"
  nc_init "$E2E_NAME" || exit 2
  trap e2e_cleanup EXIT
  trap 'exit 130' INT TERM
}

e2e_record() {
  RESULT[$1]="$2: $3"
  echo "SCENARIO $1 $2: $3"
}

e2e_summary() {
  local n failed=0
  echo
  echo "=== $E2E_NAME summary ($((($(now_ms) - E2E_T0_MS) / 1000))s)"
  for n in "${SELECTED[@]}"; do
    echo "  $n ${RESULT[$n]:-FAIL: did not run}"
    [[ ${RESULT[$n]:-FAIL} == PASS* ]] || failed=1
  done
  [ -z "${1:-}" ] || { echo "  $1"; failed=1; }
  return $failed
}
