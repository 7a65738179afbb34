#!/usr/bin/env bash
# Discovery at scale (issue 14 s3): 50 edged nodes, each in its own network namespace on
# one bridge (lib/netns_cluster.sh, 198.18.0.0/24), started in the orders a site sees
# after a power cut. Scenarios:
#   1  50 nodes started at once
#   2  50 nodes in two waves of 25, the second 1 s after the first (still forming)
#   3  20 nodes form a cluster, then 30 more start at once
# Each must end in ONE cluster of 50 with ONE supernode: every node in state member or
# supernode with the same supernode and 50 members, exactly one node in state
# supernode, within BOUND seconds of the last launch (30 s; 90 s under AddressSanitizer,
# EDGE_TEST_UNDER_ASAN=1, which ctest sets in the sanitizer build: its edged starts
# several times slower). Each prints the time it took: when the watcher saw agreement,
# and from the nodes' own events (the last event a final view needed).
#
#   tests/integration/discovery_scale_e2e.sh [--only N[,N...]] [--keep]   (root; EDGE_BUILD_DIR)
#
# One process watches all 50 nodes (cluster_view.py wait: a few nodes' /api/v1/cluster
# every 0.5 s, all of them once those agree, the events once at the end), so the test
# does not load the machine it measures. Exit status 1 when a scenario failed, 77 when not root.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/e2e.sh
. "$HERE/lib/e2e.sh"
e2e_init discovery_scale_e2e 3 "$@"
e2e_need_root "it creates network namespaces and bridges"
e2e_need_bins edged
VIEW=(python3 "$HERE/lib/cluster_view.py")
N=50
BOUND=30
[ "${EDGE_TEST_UNDER_ASAN:-0}" = 1 ] && BOUND=90
e2e_start_cluster
VD=$NC_DIR/views

t=$(now_ms)
nc_add_nodes $(seq "$N") || exit 2
nc_static_neighbours || exit 2
log "topology: $N namespaces in $(($(now_ms) - t)) ms ($NC_DIR)"
for i in $(seq "$N"); do nc_config "$i" listen 0.0.0.0:8083; done

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# wait_one_cluster TIMEOUT N I...: one watcher until nodes I... agree on one cluster of N;
# then exactly one of them must be in state supernode. WHAT = what they show, SEEN_NS =
# when the watcher saw it.
WHAT=
SEEN_NS=
wait_one_cluster() {
  local limit=$1 n=$2 i args=() rc err
  shift 2
  for i in "$@"; do args+=("$i:${NC_PID[$i]:-0}"); done
  rm -rf "$VD"
  WHAT=$("${VIEW[@]}" wait "$VD" eth0 "$n" "$limit" "$NC_DIR/n{}/edged.sock" "${args[@]}" 2>"$NC_DIR/watch.err")
  rc=$?
  SEEN_NS=$(grep -o 'seen_ns=[0-9]*' "$NC_DIR/watch.err" | cut -d= -f2)
  err=$(grep -v '^watch:' "$NC_DIR/watch.err" | tail -2 | tr '\n' ' ')
  [ -z "$err" ] || WHAT="$WHAT; $err"
  ((rc == 0)) || return 1
  WHAT="$WHAT; $("${VIEW[@]}" one_supernode "$VD" eth0 "$@" 2>&1)" || return 1
}

stop_all() {
  local i
  for i in "${!NC_PID[@]}"; do kill -TERM "${NC_PID[$i]}" 2>/dev/null; done
  for i in "${!NC_PID[@]}"; do nc_stop "$i"; done
  for i in "${NC_NODES[@]}"; do nc_wipe "$i"; nc_config "$i" listen 0.0.0.0:8083; done
}

# keep_views NAME: with --keep, the scenario's views, events and logs stay.
keep_views() {
  local i
  [ -n "${NC_KEEP:-}" ] || return 0
  cp -r "$VD" "$NC_DIR/views-$1" 2>/dev/null
  for i in "${NC_NODES[@]}"; do cp "$(nc_dir "$i")/edged.log" "$NC_DIR/views-$1/$i.log" 2>/dev/null; done
}

# check K T0 TEXT I...: scenario K's verdict on nodes I... launched (last) at T0.
check() {
  local k=$1 t0=$2 text=$3 conv
  shift 3
  if wait_one_cluster "$BOUND" "$N" "$@"; then
    conv=$("${VIEW[@]}" converge "$VD" eth0 "$t0" "$@" 2>/dev/null | cut -d' ' -f1)
    e2e_record "$k" PASS "$text: one cluster of $N in $(secs "$t0" "$SEEN_NS")s as seen (by the nodes' events ${conv:--}s) ($WHAT)"
  else
    e2e_record "$k" FAIL "$text: not one cluster of $N ${BOUND}s after the last launch: $WHAT"
    "${VIEW[@]}" show "$VD" eth0 "$@" 2>/dev/null | head -12 | sed 's/^/    /'
  fi
  keep_views "$k"
}

selected() { [[ ",$ONLY," == *",$1,"* ]]; }

if selected 1; then
  log "scenario 1: $N nodes at once"
  t0=$(now)
  for i in $(seq "$N"); do nc_start "$i"; done
  check 1 "$t0" "$N at once" $(seq "$N")
  stop_all
fi

if selected 2; then
  log "scenario 2: $N nodes in two waves of $((N / 2)), 1 s apart"
  for i in $(seq $((N / 2))); do nc_start "$i"; done
  sleep 1
  t0=$(now)
  for i in $(seq $((N / 2 + 1)) "$N"); do nc_start "$i"; done
  check 2 "$t0" "two waves of $((N / 2)), 1 s apart" $(seq "$N")
  stop_all
fi

if selected 3; then
  log "scenario 3: 20 nodes form a cluster, then $((N - 20)) at once"
  for i in $(seq 20); do nc_start "$i"; done
  if ! wait_one_cluster "$BOUND" 20 $(seq 20); then
    e2e_record 3 FAIL "the first 20 did not form one cluster in ${BOUND}s: $WHAT"
  else
    log "the first 20 agree: $WHAT"
    t0=$(now)
    for i in $(seq 21 "$N"); do nc_start "$i"; done
    check 3 "$t0" "20 formed, then $((N - 20)) at once" $(seq "$N")
  fi
  stop_all
fi

e2e_summary
