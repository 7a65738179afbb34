#!/usr/bin/env bash
# Discovery benchmark: N edged nodes against N HashiCorp Serf agents, on the same
# topology (one namespace per host on a bridge, tests/integration/lib/netns_cluster.sh)
# and in the same run.
#
#   bench/discovery_bench.sh [--sizes 5,20,50,100,200] [--quick] [--window SECONDS] [--keep]
#                            [--only edged|serf]
#   --quick: N=5 with a 1 s baseline window, under a minute (CI's smoke check)
#   (root; EDGE_BUILD_DIR=build; Debian's `serf`, else the Serf half is skipped)
#   The default run (5..200, both systems) was not timed whole. Parts, on 2 cores: 5 and
#   20 together 107 s; Serf at 100 47 s; edged at 200 ~6 min when it does not converge
#   (two 120 s waits; no join phase then); Serf at 200 4-8 min (its convergence took 7 s
#   in one run and 119 s in two: 200 agents keep 2 cores saturated, load average ~450).
#   Every wait is bounded (wait_bound, join_pre_bound; worst case about 30 min in all)
#   and each phase prints how long it took.
#
# Times: each system by its own clock, at the moment of the event where it can.
#  edged        stamps its events itself when they happen (EventLog::add takes the wall
#               clock as it appends; /api/v1/events gives them with nanoseconds): nothing
#               on edged's side is stamped when read.
#  serf         0.8.2 stamps nothing below a second: its log lines carry whole seconds,
#               `serf monitor` streams the same lines, and neither the RPC stream's member
#               events nor the event handlers' environment carry a time. So its log lines
#               are stamped on arrival by ONE process for all agents (bench/serf_watch.py
#               stamp: each agent writes to a FIFO, one epoll loop reads them all and
#               stamps each line with time_ns(); no shell loop per agent). How late it can
#               be is measured in every run: a probe writes its own time into a FIFO of
#               the same loop every 50 ms, and the lag of those lines during the launch
#               burst is printed (stamp lag: max and p90 ms; the stamper runs at nice
#               -15). Serf's event handler time (the handler stamps itself as it starts,
#               after Serf's quiet second of coalescing) is shown beside it up to 50
#               agents (above, the handlers' forks swamp 2 cores: none are registered).
# Watching: no polling storm, and as little as can be while nodes start (the watcher
#  shares the 2 cores: following all 100 nodes' event streams and views during a launch
#  took edged's launch loop from 1.8 s to 2.9 s). For edged one python3 process per wait
#  (cluster_view.py wait) fetches a few nodes' /api/v1/cluster every 0.5 s over their
#  unix sockets (the first node, then up to 8 that did not agree yet) and all of them
#  once those agree; the events are read once, after agreement. No edgectl, no fork per
#  node. For Serf one process per wait reads the stamped lines as they grow. Their CPU
#  seconds are printed (watcher_cpu_s).
#
# For each N:
#  convergence  both the same way: node (agent) 1 started first and settled (edged: the
#               supernode of a cluster of one; serf: agent 1 answering), then the N-1
#               others started at once (serf: with `-join <agent 1>` as a user would);
#               from the launch of the N-1, process start-up included for both, until
#               every node agrees. edged: per node, the time of the last
#               cluster.supernode / cluster.member_joined event its final view needed
#               (one from before the launch counts as the launch); same supernode and N
#               members everywhere. serf: per agent, the stamp of the log line that showed
#               the last of the N members alive (EventMemberJoin). The worst node counts.
#               Also shown: how long the launch loops took (kept free of forks but the
#               process's own), edged from the last node's node.started event (without
#               launch and process start-up) and when the watcher saw agreement.
#  cold_start   edged only (no Serf counterpart, no ratio): all N started at once; the
#               first claim of the supernode role waits out a probe window (150-450 ms).
#  failover     edged: kill -9 of the supernode; until every other node has a
#               cluster.supernode event for the new one. serf: kill -9 of agent 1; until
#               every other agent logged EventMemberFailed for it (handler time shown too).
#               A killed process closes its TCP sessions, which edged's members see at
#               once; failover_cut is the same after pulling the cable instead (link
#               down on the hub side): edged's new supernode, Serf's agent 2, timers only.
#  per join     with N-1 converged and quiet, the packets and bytes the nodes put on the
#               wire (rx of the hub-side veths) over a baseline window, then over the
#               join of node N until all N agree, by each system's own times (edged's
#               events, Serf's stamped log lines; the counters are sampled every 0.1 s
#               and the first sample after that moment ends the window, not the watcher's
#               later look); per join = delta - baseline rate x duration. `msgs` is edged's own messages_sent counter, summed. Not run for
#               edged when N nodes converged in neither start (N-1 would not either).
# Prints a table and `ratio <what>_<N> <edged/serf>` lines (below 1: edged is better).
# A requested figure that is missing or failed shows "-" (its ratio too), and the run
# exits 1 listing each with why (the Serf half is requested unless --only edged: without
# serf installed, run --only edged).
# Every wait is bounded; everything is cleaned up on exit (also after a kill: the next
# run sweeps the leftovers).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGE_BUILD_DIR:-$ROOT/build}
export NC_BIN=$BUILD/bin
SIZES=5,20,50,100,200
WINDOW=4
QUIET=2
ONLY=both
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --quick) SIZES=5; WINDOW=1; QUIET=1; shift ;;
    --window) WINDOW=$2; shift 2 ;;
    --keep) export NC_KEEP=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "discovery_bench: unknown argument '$1' (allowed: --sizes N,N,... --quick --window S --keep --only edged|serf)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a NS <<<"$SIZES"
MAXN=0
for n in "${NS[@]}"; do
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 2 || n > 200)); then
    echo "discovery_bench: --sizes: '$n' is not a node count in 2..200" >&2
    exit 2
  fi
  ((n > MAXN)) && MAXN=$n
done
if [ "$(id -u)" -ne 0 ]; then
  echo "discovery_bench: needs root (network namespaces)" >&2
  exit 2
fi
case $ONLY in both | edged | serf) ;; *) echo "discovery_bench: --only $ONLY: allowed edged, serf" >&2; exit 2 ;; esac
for b in edged edgectl; do
  [ "$ONLY" = serf ] || [ -x "$NC_BIN/$b" ] || { echo "discovery_bench: $NC_BIN/$b not built" >&2; exit 2; }
done
HAVE_SERF=1
command -v serf >/dev/null || { HAVE_SERF=0; echo "discovery_bench: serf not installed (scripts/install-deps.sh); Serf half skipped" >&2; }

# shellcheck source=../tests/integration/lib/netns_cluster.sh
. "$ROOT/tests/integration/lib/netns_cluster.sh"
VIEW=(python3 "$ROOT/tests/integration/lib/cluster_view.py")
SERF_WATCH=(python3 "$ROOT/bench/serf_watch.py")
nc_init discovery-bench || exit 2
SERF_STAMPER=
bench_cleanup() {
  if [ -n "$SERF_STAMPER" ]; then
    kill -9 "$SERF_STAMPER" 2>/dev/null
    wait "$SERF_STAMPER" 2>/dev/null
  fi
  nc_cleanup
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench $(date +%T)] $*" >&2; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
RUN_T0=$(now)

# How long a phase may wait for agreement: 60 s plus 0.3 s a node (N=100: 90 s, 200: 120 s).
wait_bound() { echo $((60 + $1 * 3 / 10)); }
# The N-1 of a join-cost phase are its set-up, not a figure: a minute more. Serf needs it
# now and then: an agent that lost one alive message in the launch burst learns of the
# member at the next full-state sync, every 30 s scaled by log2(N/32) + 1 (90 s at N=99;
# seen twice at N=100: one agent of 99 knew 98 after 89 s).
join_pre_bound() { echo $(($(wait_bound "$1") + 60)); }

# phase NAME CMD...: runs CMD (in this shell), logs and keeps how long it took.
declare -a PHASES=()
phase() {
  local name=$1 t rc
  shift
  t=$(now)
  "$@"
  rc=$?
  PHASES+=("$name $(secs "$t" "$(now)")s$( ((rc == 0)) || echo " (failed)")")
  log "phase $name: $(secs "$t" "$(now)")s"
  return $rc
}

setup_topology() {
  nc_add_nodes $(seq "$MAXN") || return 1
  # Serf's full mesh of 50 would overflow the ARP table all namespaces share.
  nc_static_neighbours
}
log "topology: $MAXN nodes on one bridge ($NC_DIR)"
phase "topology_$MAXN" setup_topology || exit 2

declare -A R=()
VD=$NC_DIR/views
WATCH_CPU_EDGED=0

add_cpu() {  # VAR SECONDS
  printf -v "$1" '%s' "$(awk -v a="${!1}" -v b="$2" 'BEGIN { printf "%.3f", a + b }')"
}

# ---------------------------------------------------------------- edged

# edged_wait_agree TIMEOUT N I...: one watcher (cluster_view.py wait) until nodes I...
# agree on one cluster of N with one supernode; leaves their views and events in $VD,
# what they show in $VD/agree.out and the time it saw agreement in SEEN_NS. Gives up at
# once when an edged of I... exited.
SEEN_NS=
edged_wait_agree() {
  local limit=$1 n=$2 i args=() rc cost
  shift 2
  for i in "$@"; do args+=("$i:${NC_PID[$i]:-0}"); done
  rm -rf "$VD"
  "${VIEW[@]}" wait "$VD" eth0 "$n" "$limit" "$NC_DIR/n{}/edged.sock" "${args[@]}" \
    >"$NC_DIR/agree.out" 2>"$NC_DIR/watch.err"
  rc=$?
  mkdir -p "$VD"
  mv "$NC_DIR/agree.out" "$VD/agree.out"
  cost=$(grep -o 'cpu_s=[0-9.]*' "$NC_DIR/watch.err" | cut -d= -f2)
  add_cpu WATCH_CPU_EDGED "${cost:-0}"
  SEEN_NS=$(grep -o 'seen_ns=[0-9]*' "$NC_DIR/watch.err" | cut -d= -f2)
  if ((rc != 0)); then
    log "edged: $(cat "$VD/agree.out") $(grep -v '^watch:' "$NC_DIR/watch.err" | tail -3)"
    for i in "$@"; do
      nc_running "$i" || log "edged: n$i exited: $(tail -2 "$(nc_dir "$i")/edged.log" | tr '\n' ' ')"
    done
  fi
  return $rc
}

keep_views() {  # NAME: with --keep, this phase's views and events stay for a post-mortem
  local i
  [ -n "${NC_KEEP:-}" ] || return 0
  cp -r "$VD" "$NC_DIR/views-$1"
  for i in "${NC_NODES[@]}"; do cp "$(nc_dir "$i")/edged.log" "$NC_DIR/views-$1/$i.log" 2>/dev/null; done
}

edged_fresh() {  # I...: no state from an earlier phase
  local i
  for i in "$@"; do
    nc_wipe "$i"
    rm -f "$(nc_dir "$i")/edged.log"
  done
  rm -rf "$VD"
}

edged_stop_all() {
  local i
  for i in "${!NC_PID[@]}"; do kill -TERM "${NC_PID[$i]}" 2>/dev/null; done
  for i in "${!NC_PID[@]}"; do nc_stop "$i"; done
}

supernode_index() {  # from node I's saved view
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
c = [c for c in v["clusters"] if c["interface"] == "eth0"][0]
print(next(m["name"] for m in c["members"] if m["node_id"] == c["supernode_id"]).lstrip("n"))' "$VD/$1.json"
}

# Cold start (edged only, Serf has no counterpart): all N at once, so the first claim of
# the supernode role waits out a probe window.
edged_cold_start() {  # N
  local n=$1 t0 all
  all=$(seq "$n")
  edged_fresh $all
  log "edged N=$n: cold start, $n nodes at once"
  t0=$(now)
  for i in $all; do nc_start "$i"; done
  R[edged_cold_launch_$n]=$(secs "$t0" "$(now)")
  if ! edged_wait_agree "$(wait_bound "$n")" "$n" $all; then
    R[edged_cold_$n]="fail: no single cluster of $n after $(wait_bound "$n")s: $(head -c 300 "$VD/agree.out")"
    keep_views "cold_$n"
    edged_stop_all
    return 1
  fi
  read -r R[edged_cold_$n] R[edged_cold_own_$n] < <("${VIEW[@]}" converge "$VD" eth0 "$t0" $all 2>"$VD/converge.err") ||
    log "edged N=$n: cold start from events incomplete: $(cat "$VD/converge.err")"
  keep_views "cold_$n"
  R[edged_cold_poll_$n]=$(secs "$t0" "$SEEN_NS")
  log "edged N=$n: cold start converged in ${R[edged_cold_$n]}s by events (seen by the watcher at ${R[edged_cold_poll_$n]}s): $(cat "$VD/agree.out")"
  edged_stop_all
}

# Measured as Serf's is: node 1 up and settled (supernode of a cluster of one), then the
# N-1 others at once; from their launch until all N agree.
edged_convergence() {  # N
  local n=$1 t0 all sup rest
  all=$(seq "$n")
  edged_fresh $all
  log "edged N=$n: node 1, then $((n - 1)) nodes at once"
  nc_start 1
  if ! edged_wait_agree 15 1 1; then
    R[edged_conv_$n]="fail: node 1 alone did not settle in 15s: $(head -c 200 "$VD/agree.out")"
    edged_stop_all
    return 1
  fi
  t0=$(now)
  for i in $(seq 2 "$n"); do nc_start "$i"; done
  R[edged_launch_$n]=$(secs "$t0" "$(now)")
  if ! edged_wait_agree "$(wait_bound "$n")" "$n" $all; then
    R[edged_conv_$n]="fail: no single cluster of $n after $(wait_bound "$n")s: $(head -c 300 "$VD/agree.out")"
    R[edged_fail_$n]="not run: the convergence before it failed"
    R[edged_cut_$n]=${R[edged_fail_$n]}
    keep_views "conv_$n"
    edged_stop_all
    return 1
  fi
  read -r R[edged_conv_$n] R[edged_conv_own_$n] < <("${VIEW[@]}" converge "$VD" eth0 "$t0" $all 2>"$VD/converge.err") ||
    log "edged N=$n: convergence from events incomplete: $(cat "$VD/converge.err")"
  keep_views "conv_$n"
  R[edged_conv_poll_$n]=$(secs "$t0" "$SEEN_NS")
  log "edged N=$n: converged in ${R[edged_conv_$n]}s by events (seen by the watcher at ${R[edged_conv_poll_$n]}s): $(cat "$VD/agree.out")"

  sup=$(supernode_index 1)
  rest=$(for i in $all; do [ "$i" = "$sup" ] || echo "$i"; done)
  sleep 1
  log "edged N=$n: kill -9 of the supernode n$sup"
  nc_kill9 "$sup"
  if edged_wait_agree 30 $((n - 1)) $rest; then
    R[edged_fail_$n]=$("${VIEW[@]}" failover "$VD" eth0 "$NC_KILL_NS" $rest 2>"$VD/failover.err") ||
      log "edged N=$n: failover from events incomplete: $(cat "$VD/failover.err")"
    keep_views "fail_$n"
    R[edged_fail_poll_$n]=$(secs "$NC_KILL_NS" "$SEEN_NS")
    log "edged N=$n: new supernode everywhere after ${R[edged_fail_$n]}s: $(cat "$VD/agree.out")"
  else
    R[edged_fail_$n]="fail: no agreement on a new supernode 30s after the kill: $(head -c 300 "$VD/agree.out")"
    R[edged_cut_$n]="not run: the failover before it failed"
    keep_views "fail_$n"
    edged_stop_all
    return 1
  fi

  # A killed process closes its sessions, which members see at once; a pulled cable
  # leaves only the timers.
  local first sup2 rest2 t_cut
  first=$(echo $rest | cut -d' ' -f1)
  sup2=$(supernode_index "$first")
  rest2=$(for i in $rest; do [ "$i" = "$sup2" ] || echo "$i"; done)
  if ((n > 2)); then
    sleep 1
    log "edged N=$n: link of the new supernode n$sup2 cut"
    t_cut=$(now)
    nc_cut "$sup2"
    if edged_wait_agree 30 $((n - 2)) $rest2; then
      R[edged_cut_$n]=$("${VIEW[@]}" failover "$VD" eth0 "$t_cut" $rest2 2>"$VD/failover.err") ||
        log "edged N=$n: failover after the cut, from events incomplete: $(cat "$VD/failover.err")"
      keep_views "cut_$n"
      log "edged N=$n: new supernode everywhere ${R[edged_cut_$n]}s after the cut: $(cat "$VD/agree.out")"
    else
      R[edged_cut_$n]="fail: no agreement on a new supernode 30s after the cut: $(head -c 300 "$VD/agree.out")"
      keep_views "cut_$n"
    fi
    nc_restore "$sup2"
  fi
  edged_stop_all
}

# How long N-1 nodes that just converged are left alone before the baseline window: QUIET,
# and a second per 20 nodes (after a cold start of 199, the supernode still checks their
# endpoints in the background, 4 at a time, for several seconds; at 200 nodes that
# traffic fell into the join's window and tripled its bytes).
quiet_for() { echo $((QUIET > $1 / 20 ? QUIET : $1 / 20)); }

# The link's counters sampled every 0.1 s during a join, so that a join's bytes end at
# the join's own completion (by each system's own event times) rather than when a
# watcher saw it: at 200 nodes the watcher sees agreement seconds later, and subtracting
# seconds of baseline traffic left only noise.
sampler_start() {
  (while :; do
    echo "$(now) $(nc_link_stats 1)"
    sleep 0.1
  done) >"$NC_DIR/link-samples" 2>/dev/null &
  SAMPLER=$!
}
sampler_stop() {
  kill "$SAMPLER" 2>/dev/null
  wait "$SAMPLER" 2>/dev/null
}
# The first sample at or after T (ns): "t rx_packets rx_bytes tx_packets tx_bytes".
sample_at() { awk -v t="$1" '$1 >= t { print; exit }' "$NC_DIR/link-samples"; }

# Ends the join window (T2, S2) at T1 + DONE seconds when a sample covers it; else keeps
# what the caller read when it saw agreement.
join_window_end() {  # DONE_SECONDS T1
  local done=$1 t1=$2 at sample
  [[ $done =~ ^[0-9.]+$ ]] || return 0
  at=$(awk -v t1="$t1" -v d="$done" 'BEGIN { printf "%.0f", t1 + d * 1e9 }')
  sample=$(sample_at "$at")
  [ -n "$sample" ] || return 0
  read -r t2 s2_0 s2_1 s2_2 s2_3 <<<"$sample"
  s2=("$s2_0" "$s2_1" "$s2_2" "$s2_3")
}

edged_join_cost() {  # N
  local n=$1 m=$(($1 - 1)) first s0 s1 s2 t1 t2 c0 c1 c2
  first=$(seq "$m")
  edged_fresh $(seq "$n")
  for i in $first; do nc_start "$i"; done
  if ! edged_wait_agree "$(join_pre_bound "$m")" "$m" $first; then
    R[edged_pkts_$n]="fail: the first $m did not converge in $(join_pre_bound "$m")s"
    R[edged_bytes_$n]=${R[edged_pkts_$n]}
    edged_stop_all
    return 1
  fi
  sleep "$(quiet_for "$n")"
  edged_wait_agree 15 "$m" $first
  c0=$("${VIEW[@]}" counters "$VD" eth0 $first)
  local b0 b1
  read -r -a s0 <<<"$(nc_link_stats 1)"
  b0=$(now)
  sleep "$WINDOW"
  edged_wait_agree 15 "$m" $first
  c1=$("${VIEW[@]}" counters "$VD" eth0 $first)
  # Read last, right before the join: the agreement check and the counters above take
  # seconds at 200 nodes, and their baseline traffic was counted as the join's.
  read -r -a s1 <<<"$(nc_link_stats 1)"
  b1=$(now)
  sampler_start
  t1=$(now)
  nc_start "$n"
  if ! edged_wait_agree 30 "$n" $(seq "$n"); then
    sampler_stop
    R[edged_pkts_$n]="fail: node $n did not join in 30s: $(head -c 300 "$VD/agree.out")"
    R[edged_bytes_$n]=${R[edged_pkts_$n]}
    edged_stop_all
    return 1
  fi
  t2=$(now)
  sampler_stop
  read -r -a s2 <<<"$(nc_link_stats 1)"
  c2=$("${VIEW[@]}" counters "$VD" eth0 $(seq "$n"))
  local done_s
  read -r done_s _ < <("${VIEW[@]}" converge "$VD" eth0 "$t1" $(seq "$n") 2>/dev/null)
  log "edged N=$n: join of node $n complete ${done_s:-?}s after its launch by the nodes' events (watcher: $(secs "$t1" "$t2")s)"
  join_window_end "${done_s:-}" "$t1"
  per_join edged "$n" "${s0[*]}" "${s1[*]}" "${s2[*]}" "$t1" "$t2" "$(secs "$b0" "$b1")"
  # Members ping their supernode every second: the baseline rate comes off here too.
  R[edged_msgs_$n]=$(python3 -c '
import sys
def kv(s): return {k: int(v) for k, v in (p.split("=") for p in s.split())}
a, b, c = (kv(x).get("messages_sent", 0) for x in sys.argv[1:4])
w, d = float(sys.argv[4]), (int(sys.argv[6]) - int(sys.argv[5])) / 1e9
print(round((c - b) - (b - a) / w * d))' "$c0" "$c1" "$c2" "$WINDOW" "$t1" "$t2")
  edged_stop_all
}

per_join() {  # WHO N "s0" "s1" "s2" T1 T2 [BASELINE_S]: baseline s0->s1 over BASELINE_S (default WINDOW), join s1->s2 over T1..T2
  local who=$1 n=$2 out
  out=$(awk -v a="$3" -v b="$4" -v c="$5" -v w="${8:-$WINDOW}" -v t1="$6" -v t2="$7" 'BEGIN {
    split(a, s0); split(b, s1); split(c, s2); d = (t2 - t1) / 1e9
    p = (s2[1] - s1[1]) - (s1[1] - s0[1]) / w * d
    y = (s2[2] - s1[2]) - (s1[2] - s0[2]) / w * d
    printf "%.0f %.0f %.1f %.0f %.3f", p, y, (s1[1] - s0[1]) / w, (s1[2] - s0[2]) / w, d }')
  read -r R[${who}_pkts_$n] R[${who}_bytes_$n] R[${who}_base_pps_$n] R[${who}_base_bps_$n] R[${who}_join_s_$n] <<<"$out"
  log "$who N=$n: join of node $n: ${R[${who}_pkts_$n]} packets, ${R[${who}_bytes_$n]} bytes over ${R[${who}_join_s_$n]}s (baseline ${R[${who}_base_pps_$n]} pkt/s, ${R[${who}_base_bps_$n]} B/s)"
}

# ---------------------------------------------------------------- serf

SERF_HANDLER=$NC_DIR/serf-handler.sh
cat >"$SERF_HANDLER" <<'HANDLER'
#!/bin/bash
# Serf event handler: "<epoch ns> <event> <members>" appended to the file in $1, stamped
# as it starts. Builtins only: one that forked date, cut and tr for every event of every
# agent was a fork storm at 200 agents (load average 770 on 2 cores).
t=${EPOCHREALTIME/./}
m=
while IFS=$'\t' read -r name _; do m+="$name "; done
echo "${t}000 $SERF_EVENT $m" >>"$1"
HANDLER
chmod +x "$SERF_HANDLER"

# The one stamping process (bench/serf_watch.py stamp): FIFOs $NC_DIR/fifo/n1..nMAXN.
serf_stamper_start() {
  local tries=0
  # Ahead of the agents for the CPU (it needs little: ~0.5 s a run): at N=200 at the
  # default priority, lines were stamped up to 420 ms late (p90 164 ms) in the burst.
  nice -n -15 "${SERF_WATCH[@]}" stamp "$NC_DIR" "$MAXN" 2>"$NC_DIR/stamper.err" &
  SERF_STAMPER=$!
  until [ -e "$NC_DIR/stamper.ready" ]; do
    if ((tries++ > 100)) || ! kill -0 "$SERF_STAMPER" 2>/dev/null; then
      log "serf: the stamping process did not start: $(cat "$NC_DIR/stamper.err")"
      return 1
    fi
    sleep 0.1
  done
}

declare -A SERF_PID=()
# No subshell here (nor in nc_spawn): the launch loop of the N-1 is part of what is timed.
# nsenter execs serf, so the pid nc_spawn gives is the agent's.
# The event handler only up to SERF_HANDLER_MAX agents: above, a process per event per
# agent is a fork storm on 2 cores (at 200, even a builtins-only handler kept the load
# average at 700, stuck in mmap, and Serf's convergence went from 7 s to 123 s). Without
# it the handler column shows "-"; the figures come from the log lines either way.
SERF_HANDLER_MAX=50
export SERF_NO_HANDLER=0
serf_start() {  # I [serf agent args...]
  local i=$1 d=$NC_DIR/n$1 h=()
  shift
  ((SERF_NO_HANDLER)) || h=(-event-handler "member-join,member-failed=$SERF_HANDLER $d/serf.events")
  nc_spawn "$i" "$NC_DIR/fifo/n$i" serf agent -node "n$i" -bind "198.18.0.$((10 + i)):7946" \
    -rpc-addr 127.0.0.1:7373 "${h[@]}" "$@"
  SERF_PID[$i]=$NC_SPAWN_PID
}

serf_stop_all() {
  local p
  for p in "${!NC_SPAWNED[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${!NC_SPAWNED[@]}"; do
    wait "$p" 2>/dev/null
    unset "NC_SPAWNED[$p]"
  done
  SERF_PID=()
}

# serf_fresh [NAME]: a new phase: lines stamped before now are not its. With --keep, the
# handler files of the phase that ends stay in serf-NAME/ (serf.stamped stays whole).
SERF_SINCE=0
serf_fresh() {
  local i
  for i in $(seq "$MAXN"); do
    if [ -n "${NC_KEEP:-}" ] && [ -n "${1:-}" ] && [ -f "$(nc_dir "$i")/serf.events" ]; then
      mkdir -p "$NC_DIR/serf-$1"
      cp "$(nc_dir "$i")/serf.events" "$NC_DIR/serf-$1/n$i.events"
    fi
    rm -f "$(nc_dir "$i")/serf.events"
  done
  SERF_SINCE=$(now)
}

serf_wait() {  # TIMEOUT joined N T0 I... | TIMEOUT failed NAME T0 I...: "log handler"
  local limit=$1 what=$2 arg=$3 t0=$4 rc
  shift 4
  /usr/bin/time -f '%U %S' -o "$NC_DIR/serf_wait.time" \
    "${SERF_WATCH[@]}" wait "$NC_DIR" "$limit" "$what" "$arg" "$SERF_SINCE" "$t0" "$@" \
    2>"$NC_DIR/serf_wait.err"
  rc=$?
  # Often called in $(...): the CPU seconds go to a file, summed at the end.
  awk '{ print $1 + $2 }' "$NC_DIR/serf_wait.time" >>"$NC_DIR/serf_wait.cpu" 2>/dev/null
  if ((rc != 0)); then
    log "serf: $(tail -2 "$NC_DIR/serf_wait.err")"
    # What those agents themselves say (a log line missing, or a member not known?).
    local a
    for a in $(grep -o 'n[0-9]*(' "$NC_DIR/serf_wait.err" | tr -d 'n(' | head -5); do
      log "serf: n$a knows $(nc_exec "$a" serf members -rpc-addr 127.0.0.1:7373 2>&1 | grep -c ' alive') members alive"
    done
  fi
  return $rc
}

serf_first_up() {
  serf_start 1
  nc_wait 10 nc_exec 1 serf members -rpc-addr 127.0.0.1:7373
}

serf_convergence() {  # N
  local n=$1 t0 out rest
  serf_fresh
  SERF_NO_HANDLER=$((n > SERF_HANDLER_MAX))
  log "serf N=$n: agent 1, then $((n - 1)) agents with -join $(nc_addr 1)"
  if ! serf_first_up; then
    R[serf_conv_$n]="fail: agent 1 did not answer in 10s"
    serf_stop_all
    return 1
  fi
  local join t_up
  join=$(nc_addr 1)
  t0=$(now)
  for i in $(seq 2 "$n"); do serf_start "$i" -join "$join"; done
  t_up=$(now)
  R[serf_launch_$n]=$(secs "$t0" "$t_up")
  if out=$(serf_wait "$(wait_bound "$n")" joined "$n" "$t0" $(seq "$n")); then
    read -r R[serf_conv_$n] R[serf_conv_h_$n] <<<"$out"
    log "serf N=$n: every agent saw $n members after ${R[serf_conv_$n]}s (handler: ${R[serf_conv_h_$n]}s)"
  else
    R[serf_conv_$n]="fail: not every agent saw $n members in $(wait_bound "$n")s: $(tail -1 "$NC_DIR/serf_wait.err" | head -c 300)"
    R[serf_fail_$n]="not run: the convergence before it failed"
    R[serf_cut_$n]=${R[serf_fail_$n]}
    serf_stop_all
    return 1
  fi
  R[serf_lag_$n]=$("${SERF_WATCH[@]}" lag "$NC_DIR" "$t0" "$(now)")
  log "serf N=$n: stamp lag over the launch burst and convergence (max p90 ms, samples): ${R[serf_lag_$n]}"
  sleep 1
  rest=$(seq 2 "$n")
  log "serf N=$n: kill -9 of agent n1"
  t0=$(now)
  kill -9 "${SERF_PID[1]}"
  wait "${SERF_PID[1]}" 2>/dev/null  # reaped here, so bash's "Killed" notice goes nowhere
  unset "NC_SPAWNED[${SERF_PID[1]}]"
  if out=$(serf_wait 60 failed n1 "$t0" $rest); then
    read -r R[serf_fail_$n] R[serf_fail_h_$n] <<<"$out"
    log "serf N=$n: every agent marked n1 failed after ${R[serf_fail_$n]}s (handler: ${R[serf_fail_h_$n]}s)"
  else
    R[serf_fail_$n]="fail: not every agent marked n1 failed in 60s: $(tail -1 "$NC_DIR/serf_wait.err" | head -c 300)"
    R[serf_cut_$n]="not run: the failover before it failed"
    serf_stop_all
    return 1
  fi
  if ((n > 2)); then
    sleep 1
    log "serf N=$n: link of agent n2 cut"
    t0=$(now)
    nc_cut 2
    if out=$(serf_wait 60 failed n2 "$t0" $(seq 3 "$n")); then
      read -r R[serf_cut_$n] R[serf_cut_h_$n] <<<"$out"
      log "serf N=$n: every agent marked n2 failed ${R[serf_cut_$n]}s after the cut (handler: ${R[serf_cut_h_$n]}s)"
    else
      R[serf_cut_$n]="fail: not every agent marked n2 failed 60s after the cut: $(tail -1 "$NC_DIR/serf_wait.err" | head -c 300)"
    fi
    nc_restore 2
  fi
  serf_stop_all
}

serf_join_cost() {  # N
  local n=$1 m=$(($1 - 1)) s0 s1 s2 t1 t2
  serf_fresh "conv_$n"
  SERF_NO_HANDLER=$((n > SERF_HANDLER_MAX))
  if ! serf_first_up; then
    R[serf_pkts_$n]="fail: agent 1 did not answer in 10s"
    R[serf_bytes_$n]=${R[serf_pkts_$n]}
    serf_stop_all
    return 1
  fi
  t1=$(now)
  for i in $(seq 2 "$m"); do serf_start "$i" -join "$(nc_addr 1)"; done
  if ! serf_wait "$(join_pre_bound "$m")" joined "$m" "$t1" $(seq "$m") >/dev/null; then
    R[serf_pkts_$n]="fail: the first $m agents did not converge in $(join_pre_bound "$m")s"
    R[serf_bytes_$n]=${R[serf_pkts_$n]}
    serf_stop_all
    return 1
  fi
  sleep "$(quiet_for "$n")"
  read -r -a s0 <<<"$(nc_link_stats 1)"
  sleep "$WINDOW"
  read -r -a s1 <<<"$(nc_link_stats 1)"
  sampler_start
  t1=$(now)
  serf_start "$n" -join "$(nc_addr 1)"
  local out done_s
  if ! out=$(serf_wait 30 joined "$n" "$t1" $(seq "$n")); then
    sampler_stop
    R[serf_pkts_$n]="fail: agent $n did not join in 30s"
    R[serf_bytes_$n]=${R[serf_pkts_$n]}
    serf_stop_all
    return 1
  fi
  t2=$(now)
  sampler_stop
  read -r -a s2 <<<"$(nc_link_stats 1)"
  read -r done_s _ <<<"$out"
  log "serf N=$n: join of agent $n complete ${done_s:-?}s after its launch by its log stamps (watcher: $(secs "$t1" "$t2")s)"
  join_window_end "${done_s:-}" "$t1"
  per_join serf "$n" "${s0[*]}" "${s1[*]}" "${s2[*]}" "$t1" "$t2"
  serf_stop_all
}

# ---------------------------------------------------------------- run

# fig KEY: R[KEY] when it is a figure, else "-"
fig() {
  local v=${R[$1]:-}
  if [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]]; then echo "$v"; else echo -; fi
}


if ((HAVE_SERF)) && [ "$ONLY" != edged ]; then
  serf_stamper_start || HAVE_SERF=0
fi
for n in "${NS[@]}"; do
  if [ "$ONLY" != serf ]; then
    phase "edged_cold_$n" edged_cold_start "$n"
    phase "edged_conv_$n" edged_convergence "$n"
    if [ "$(fig "edged_cold_$n")" = - ] && [ "$(fig "edged_conv_$n")" = - ]; then
      R[edged_pkts_$n]="not run: $n nodes converged in neither start"
      R[edged_bytes_$n]=${R[edged_pkts_$n]}
    else
      phase "edged_join_$n" edged_join_cost "$n"
    fi
  fi
  if ((HAVE_SERF)) && [ "$ONLY" != edged ]; then
    phase "serf_conv_$n" serf_convergence "$n"
    phase "serf_join_$n" serf_join_cost "$n"
  fi
done
if [ -n "$SERF_STAMPER" ]; then
  # utime + stime of the stamping process, in clock ticks
  read -r -a st < <(sed 's/.*) //' "/proc/$SERF_STAMPER/stat" 2>/dev/null)
  STAMPER_CPU=$(awk -v u="${st[11]:-0}" -v s="${st[12]:-0}" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (u + s) / t }')
fi

# The figures this run was asked for; those that are not figures make it exit 1.
NOT_RESULTS=()
for n in "${NS[@]}"; do
  want=()
  [ "$ONLY" = serf ] || want+=(edged_conv edged_cold edged_fail edged_pkts edged_bytes)
  [ "$ONLY" = edged ] || want+=(serf_conv serf_fail serf_pkts serf_bytes)
  if ((n > 2)); then
    [ "$ONLY" = serf ] || want+=(edged_cut)
    [ "$ONLY" = edged ] || want+=(serf_cut)
  fi
  for k in "${want[@]}"; do
    [ "$(fig "${k}_$n")" != - ] || NOT_RESULTS+=("${k}_$n: ${R[${k}_$n]:-did not run}")
  done
done

ratio() {  # A B -> A/B, or - when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.3g", a / b; else printf "-" }'
}

echo
printf '%-5s %-22s %12s %12s %8s   %s\n' N metric edged serf ratio "notes"
for n in "${NS[@]}"; do
  printf '%-5s %-22s %12s %12s %8s   %s\n' "$n" convergence_s "$(fig edged_conv_$n)" "$(fig serf_conv_$n)" \
    "$(ratio "${R[edged_conv_$n]:-}" "${R[serf_conv_$n]:-}")" \
    "node 1 settled, then $((n - 1)) at once; launch loop edged ${R[edged_launch_$n]:--}s serf ${R[serf_launch_$n]:--}s; edged after the last node.started ${R[edged_conv_own_$n]:--}s, seen by the watcher ${R[edged_conv_poll_$n]:--}s; serf handler ${R[serf_conv_h_$n]:--}s, stamp lag max/p90 ms/samples ${R[serf_lag_$n]:--}"
  printf '%-5s %-22s %12s %12s %8s   %s\n' "$n" cold_start_s "$(fig edged_cold_$n)" - - \
    "edged only: all $n at once (probe window before the first claim); launch loop ${R[edged_cold_launch_$n]:--}s; after the last node.started ${R[edged_cold_own_$n]:--}s, seen by the watcher ${R[edged_cold_poll_$n]:--}s"
  printf '%-5s %-22s %12s %12s %8s   %s\n' "$n" failover_s "$(fig edged_fail_$n)" "$(fig serf_fail_$n)" \
    "$(ratio "${R[edged_fail_$n]:-}" "${R[serf_fail_$n]:-}")" \
    "edged seen by the watcher ${R[edged_fail_poll_$n]:--}s; serf handler ${R[serf_fail_h_$n]:--}s"
  printf '%-5s %-22s %12s %12s %8s   %s\n' "$n" failover_cut_s "$(fig edged_cut_$n)" "$(fig serf_cut_$n)" \
    "$(ratio "${R[edged_cut_$n]:-}" "${R[serf_cut_$n]:-}")" \
    "link of the (new) supernode / agent n2 cut; serf handler ${R[serf_cut_h_$n]:--}s"
  printf '%-5s %-22s %12s %12s %8s   %s\n' "$n" packets_per_join "$(fig edged_pkts_$n)" "$(fig serf_pkts_$n)" \
    "$(ratio "${R[edged_pkts_$n]:-}" "${R[serf_pkts_$n]:-}")" \
    "baseline pkt/s edged ${R[edged_base_pps_$n]:--} serf ${R[serf_base_pps_$n]:--}; edged msgs ${R[edged_msgs_$n]:--}"
  printf '%-5s %-22s %12s %12s %8s   %s\n' "$n" bytes_per_join "$(fig edged_bytes_$n)" "$(fig serf_bytes_$n)" \
    "$(ratio "${R[edged_bytes_$n]:-}" "${R[serf_bytes_$n]:-}")" \
    "baseline B/s edged ${R[edged_base_bps_$n]:--} serf ${R[serf_base_bps_$n]:--}; join window edged ${R[edged_join_s_$n]:--}s serf ${R[serf_join_s_$n]:--}s"
done
echo
WATCH_CPU_SERF=$(cat "$NC_DIR/serf_wait.cpu" 2>/dev/null | awk '{ t += $1 } END { printf "%.3f", t }')
echo "phases: $(printf '%s; ' "${PHASES[@]}")"
echo "watcher_cpu_s: edged ${WATCH_CPU_EDGED} (cluster_view.py wait), serf ${WATCH_CPU_SERF} (serf_watch.py wait) + ${STAMPER_CPU:--} (the stamping process); whole run $(secs "$RUN_T0" "$(now)")s"
echo
for n in "${NS[@]}"; do
  echo "ratio convergence_$n $(ratio "${R[edged_conv_$n]:-}" "${R[serf_conv_$n]:-}")"
  echo "ratio failover_$n $(ratio "${R[edged_fail_$n]:-}" "${R[serf_fail_$n]:-}")"
  echo "ratio failover_cut_$n $(ratio "${R[edged_cut_$n]:-}" "${R[serf_cut_$n]:-}")"
  echo "ratio bytes_per_join_$n $(ratio "${R[edged_bytes_$n]:-}" "${R[serf_bytes_$n]:-}")"
  echo "ratio packets_per_join_$n $(ratio "${R[edged_pkts_$n]:-}" "${R[serf_pkts_$n]:-}")"
done
if ((${#NOT_RESULTS[@]} > 0)); then
  echo
  echo "discovery_bench: ${#NOT_RESULTS[@]} requested figure(s) are not results:"
  printf '  %s\n' "${NOT_RESULTS[@]}"
  exit 1
fi
