#!/usr/bin/env bash
# Discovery on real links: edged nodes, each in its own network namespace on bridges
# (lib/netns_cluster.sh, addresses from 198.18.0.0/15), seen as a user sees them
# (`edgectl cluster -o json`, /api/v1/events, /api/v1/healthz). Scenarios:
#   1  10 nodes form one cluster with no discovery configuration
#   2  kill -9 of the supernode: the 9 others agree on a new one within 2 s
#   3  4 battery, non-persistent nodes; a mains, persistent node joins and takes over
#      everywhere; no further supernode change for 5 s
#   4  partition 6 nodes 3/3: one supernode per side; heal: one cluster of 6
#   5  a node advertising an endpoint nobody serves is blacklisted, with a reason that
#      names the endpoint, and is not a member (seen from the supernode and a member)
#   6  a node on two bridges is in two clusters, each with the nodes of its bridge
#   7  a flood of malformed and forged datagrams: every node healthy, the cluster
#      unchanged, the drops counted
#
#   tests/integration/cluster_e2e.sh [--only N[,N...]] [--keep]   (root; EDGE_BUILD_DIR)
#
# Each scenario prints PASS or FAIL with what it saw; the exit status is 1 when one
# failed, 77 (skipped) when not root. --keep keeps the nodes' logs and data.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/e2e.sh
. "$HERE/lib/e2e.sh"
e2e_init cluster_e2e 7 "$@"
e2e_need_root "it creates network namespaces and bridges"
e2e_need_bins edged edgectl edge-packet-flood
VIEW=(python3 "$HERE/lib/cluster_view.py")
e2e_start_cluster
VD=$NC_DIR/views
mkdir -p "$VD"

# The topology, made once: nodes 1..10 on bridge 1; node 11 on bridges 1 and 2; nodes 12
# and 13 on bridge 2; node 240 (198.18.0.250) on bridge 1 sends the flood.
for i in $(seq 10); do nc_add_node "$i" 1 || exit 2; done
nc_add_node 11 1 2 || exit 2
nc_add_node 12 2 || exit 2
nc_add_node 13 2 || exit 2
nc_add_node 240 1 || exit 2

SCEN_NODES=  # the nodes of the running scenario, for the logs of a failure
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

snapshot() {  # json|events|both I...
  local what=$1 i pids=()
  shift
  for i in "$@"; do
    if [ "$what" != events ]; then
      nc_json "$i" >"$VD/$i.json" 2>/dev/null &
      pids+=($!)
    fi
    if [ "$what" != json ]; then
      nc_events "$i" >"$VD/$i.events" 2>/dev/null &
      pids+=($!)
    fi
  done
  wait "${pids[@]}" 2>/dev/null
}

agree() {  # IFACE N I...: saves the views; AGREE = what they show
  local iface=$1 n=$2
  shift 2
  snapshot json "$@"
  AGREE=$("${VIEW[@]}" agree "$VD" "$iface" "$n" "$@" 2>&1)
}

wait_agree() {  # TIMEOUT IFACE N I...; gives up early when an edged of I... exited
  local limit=$1 deadline dead
  shift
  deadline=$(($(now) + limit * 1000000000))
  until agree "$@"; do
    dead=$(exited "${@:3}")
    if [ -n "$dead" ]; then
      AGREE="$AGREE; edged exited: $dead"
      return 1
    fi
    (($(now) > deadline)) && return 1
    sleep 0.3
  done
}

exited() {  # I...: "nI (last log line)" for each node whose edged is not running
  local i
  for i in "$@"; do
    nc_running "$i" || echo -n "n$i ($(tail -n 1 "$(nc_dir "$i")/edged.log" 2>/dev/null)) "
  done
}

show() {  # IFACE I...: what the nodes show, indented
  snapshot json "${@:2}"
  "${VIEW[@]}" show "$VD" "$@" | sed 's/^/    /'
}

supernode_of() {  # I [IFACE]: node number of the supernode node I shows
  python3 - "$VD/$1.json" "${2:-eth0}" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[1]))
    c = [c for c in v["clusters"] if c["interface"] == sys.argv[2]][0]
    print(next(m["name"] for m in c["members"] if m["node_id"] == c["supernode_id"]).lstrip("n"))
except Exception:
    print("")
EOF
}

# The config every node gets: the cluster port; discovery is on by default.
base_config() {
  local i
  for i in "$@"; do nc_config "$i" listen 0.0.0.0:8083; done
}

reset_nodes() {  # stops every edged, forgets every node's state and extra config
  local i
  for i in "${!NC_PID[@]}"; do kill -TERM "${NC_PID[$i]}" 2>/dev/null; done
  for i in "${!NC_PID[@]}"; do nc_stop "$i"; done
  nc_heal
  for i in "${NC_NODES[@]}"; do
    nc_restore "$i" 2>/dev/null
    nc_wipe "$i"
  done
  rm -f "$VD"/*
}

start_nodes() {
  local i
  for i in "$@"; do nc_start "$i"; done
}

running_cluster() {  # N I...: these nodes run and agree (a scenario can reuse them)
  local n=$1 i
  shift
  for i in "$@"; do nc_running "$i" || return 1; done
  agree eth0 "$n" "$@"
}

fresh_cluster() {  # TIMEOUT N I...: reset, start nodes I..., wait until they agree
  local limit=$1 n=$2 t0
  shift 2
  reset_nodes
  base_config "$@"
  t0=$(now)
  start_nodes "$@"
  if wait_agree "$limit" eth0 "$n" "$@"; then
    log "  $n nodes agree after $(secs "$t0" "$(now)")s: $AGREE"
    return 0
  fi
  log "  no agreement after ${limit}s: $AGREE"
  show eth0 "$@"
  return 1
}

result() {  # N PASS|FAIL TEXT
  e2e_record "$@"
  if [ "$2" = FAIL ]; then
    echo "    last log lines of the nodes:"
    local i
    for i in $SCEN_NODES; do
      [ -s "$(nc_dir "$i")/edged.log" ] || continue
      grep -v 'level=debug' "$(nc_dir "$i")/edged.log" | tail -n 4 | sed "s/^/    n$i: /"
    done
  fi
}

# ------------------------------------------------------------------------ scenarios

scenario_1() {
  SCEN_NODES="$(seq 10)"
  log "1: 10 nodes form one cluster"
  local all t0
  all=$(seq 10)
  reset_nodes
  base_config $all
  t0=$(now)
  start_nodes $all
  if wait_agree 30 eth0 10 $all; then
    result 1 PASS "10 nodes agree after $(secs "$t0" "$(now)")s: $AGREE"
  else
    result 1 FAIL "after 30s: $AGREE"
    show eth0 $all
  fi
}

scenario_2() {
  SCEN_NODES="$(seq 10)"
  log "2: kill -9 of the supernode"
  local all sup rest took
  all=$(seq 10)
  running_cluster 10 $all || fresh_cluster 30 10 $all || { result 2 FAIL "no cluster of 10 to start from"; return; }
  sup=$(supernode_of 1)
  [ -n "$sup" ] || { result 2 FAIL "node 1 shows no supernode"; return; }
  rest=$(for i in $all; do [ "$i" = "$sup" ] || echo "$i"; done)
  log "  kill -9 of the supernode n$sup"
  nc_kill9 "$sup"
  if ! wait_agree 10 eth0 9 $rest; then
    result 2 FAIL "10s after killing n$sup the 9 others do not agree: $AGREE"
    show eth0 $rest
    return
  fi
  snapshot events $rest
  took=$("${VIEW[@]}" failover "$VD" eth0 "$NC_KILL_NS" $rest 2>"$VD/failover.err")
  local rc=$?
  local detail
  detail=$(tr '\n' ' ' <"$VD/failover.err")
  if ((rc == 0)) && awk -v t="$took" 'BEGIN { exit !(t <= 2.0) }'; then
    result 2 PASS "new supernode on all 9 within ${took}s of the kill (${detail}); $AGREE"
  else
    result 2 FAIL "new supernode after ${took:-?}s (limit 2 s): ${detail}; $AGREE"
  fi
}

scenario_3() {
  SCEN_NODES="1 2 3 4 5"
  log "3: a better node joins and takes over"
  local t_join hist bad=""
  if ! fresh_cluster_weak; then
    result 3 FAIL "the 4 battery nodes did not form a cluster: $AGREE"
    return
  fi
  base_config 5
  t_join=$(now)
  nc_start 5
  if ! wait_until_supernode 15 5 1 2 3 4 5; then
    result 3 FAIL "15s after n5 (mains, persistent) started, not supernode everywhere: $AGREE"
    show eth0 1 2 3 4 5
    return
  fi
  local took t_all
  t_all=$(now)
  took=$(secs "$t_join" "$t_all")
  log "  n5 is supernode everywhere ${took}s after its start; watching 5 s for flapping"
  sleep 5
  snapshot both 1 2 3 4 5
  # Since n5's start every node's supernode changed to n5 last (n5 itself may first
  # have registered with the old supernode); since all showed n5, nothing changed.
  hist=$("${VIEW[@]}" supernode_history "$VD" "$t_join" 1 2 3 4 5)
  while read -r node seq; do
    [ "${seq##* }" = n5 ] || bad="$bad ${node}[$seq]"
  done <<<"$hist"
  local later
  later=$("${VIEW[@]}" supernode_history "$VD" "$t_all" 1 2 3 4 5 | awk 'NF > 1' | tr '\n' ' ')
  agree eth0 5 1 2 3 4 5
  if [ -z "$bad" ] && [ -z "$later" ] && [ "$(supernode_of 1)" = 5 ]; then
    result 3 PASS "n5 took over everywhere ${took}s after its start, no change in the next 5 s (changes since its start: $(tr '\n' ' ' <<<"$hist")); $AGREE"
  else
    result 3 FAIL "changes since n5's start: $(tr '\n' ' ' <<<"$hist")(last must be n5:$bad); in the 5 s after: ${later:-none}; now: $AGREE"
  fi
}

fresh_cluster_weak() {
  local i
  reset_nodes
  base_config 1 2 3 4
  for i in 1 2 3 4; do
    nc_config "$i" power battery
    nc_config "$i" persistent false
  done
  start_nodes 1 2 3 4
  wait_agree 20 eth0 4 1 2 3 4
}

wait_until_supernode() {  # TIMEOUT S I...: nodes I... agree and S is their supernode
  local limit=$1 s=$2 deadline
  shift 2
  deadline=$(($(now) + limit * 1000000000))
  until agree eth0 $# "$@" && [ "$(supernode_of "$1")" = "$s" ]; do
    (($(now) > deadline)) && return 1
    sleep 0.3
  done
}

scenario_4() {
  SCEN_NODES="1 2 3 4 5 6"
  log "4: partition and heal"
  local all="1 2 3 4 5 6" a b t_heal
  fresh_cluster 30 6 $all || { result 4 FAIL "no cluster of 6 to start from: $AGREE"; return; }
  log "  partition: n4 n5 n6 moved to a bridge of their own"
  nc_partition 4 5 6
  if ! wait_agree 20 eth0 3 1 2 3; then
    result 4 FAIL "side n1-n3 did not settle on 3 members within 20s: $AGREE"
    show eth0 $all
    return
  fi
  a=$(supernode_of 1)
  if ! wait_agree 20 eth0 3 4 5 6; then
    result 4 FAIL "side n4-n6 did not settle on 3 members within 20s: $AGREE"
    show eth0 $all
    return
  fi
  b=$(supernode_of 4)
  log "  partitioned: supernodes n$a and n$b"
  if [ -z "$a" ] || [ -z "$b" ] || [ "$a" = "$b" ]; then
    result 4 FAIL "want one supernode per side, saw n$a and n$b"
    return
  fi
  nc_heal
  t_heal=$(now)
  if wait_agree 20 eth0 6 $all; then
    result 4 PASS "sides had supernodes n$a and n$b; $(secs "$t_heal" "$(now)")s after the heal: $AGREE"
  else
    result 4 FAIL "20s after the heal: $AGREE"
    show eth0 $all
  fi
}

scenario_5() {
  SCEN_NODES="1 2 3 4"
  log "5: a lying node is blacklisted"
  local liar=4 addr endpoint out sup member
  addr=$(nc_addr $liar)
  endpoint=$addr:9
  fresh_cluster 20 3 1 2 3 || { result 5 FAIL "no cluster of 3 to start from: $AGREE"; return; }
  sup=$(supernode_of 1)
  member=$(for i in 1 2 3; do [ "$i" = "$sup" ] || { echo "$i"; break; }; done)
  base_config $liar
  nc_config $liar advertise "$endpoint"
  nc_config $liar power battery
  nc_start $liar
  local deadline=$(($(now) + 15 * 1000000000))
  until snapshot json 1 2 3 && out=$("${VIEW[@]}" blacklist "$VD" eth0 "n$liar" "$addr" "$sup" "$member" 2>&1); do
    if (($(now) > deadline)); then
      result 5 FAIL "15s after n$liar (advertising $endpoint) started: $out"
      show eth0 1 2 3 $liar
      return
    fi
    sleep 0.5
  done
  if ! grep -F "$endpoint" <<<"$out" >/dev/null; then
    result 5 FAIL "blacklisted, but the reason does not name $endpoint: $out"
    return
  fi
  if ! agree eth0 3 1 2 3; then
    result 5 FAIL "the cluster changed: $AGREE"
    return
  fi
  result 5 PASS "supernode n$sup and member n$member show n$liar blacklisted: $out; $AGREE"
}

scenario_6() {
  SCEN_NODES="1 2 3 11 12 13"
  log "6: a node on two bridges is in two clusters"
  reset_nodes
  base_config 1 2 3 11 12 13
  nc_config 11 discovery_interfaces eth0,eth1
  start_nodes 1 2 3 11 12 13
  local ok=1 a b
  if wait_agree 20 eth0 4 1 2 3 11; then
    a=$AGREE
  else
    ok=0
    a="eth0: $AGREE"
  fi
  if wait_agree 20 eth1 3 11 12 13; then
    b=$AGREE
  else
    ok=0
    b="eth1: $AGREE"
  fi
  if ((ok)); then
    result 6 PASS "n11 on eth0 with n1-n3 ($a) and on eth1 with n12, n13 ($b)"
  else
    result 6 FAIL "$a; $b"
    show eth0 1 2 3 11
    show eth1 11 12 13
  fi
}

scenario_7() {
  SCEN_NODES="1 2 3 4 5"
  log "7: malformed-packet flood"
  local all="1 2 3 4 5" before after unhealthy="" i flood_pid drops
  fresh_cluster 20 5 $all || { result 7 FAIL "no cluster of 5 to start from: $AGREE"; return; }
  before=$AGREE
  nc_spawn 240 "$NC_DIR/flood.log" "$NC_BIN/edge-packet-flood" --group 239.255.83.83:8083 \
    --interface-address "$(nc_addr 240)" --count 20000 --seconds 10 --capture-seconds 2
  flood_pid=$NC_SPAWN_PID
  # Health is asked while the flood runs, not only after.
  local rounds=0
  while kill -0 "$flood_pid" 2>/dev/null && ((rounds < 75)); do
    for i in $all; do nc_healthy "$i" || unhealthy="$unhealthy n$i@$rounds"; done
    sleep 0.2
    rounds=$((rounds + 1))
  done
  wait "$flood_pid" 2>/dev/null
  unset "NC_SPAWNED[$flood_pid]"
  sleep 1
  for i in $all; do
    nc_running "$i" || unhealthy="$unhealthy n$i:exited"
    nc_healthy "$i" || unhealthy="$unhealthy n$i:after"
  done
  agree eth0 5 $all
  after=$AGREE
  drops=$("${VIEW[@]}" show "$VD" eth0 $all | awk '{ m = f = 0
    for (j = 1; j <= NF; j++) { split($j, kv, "="); if (kv[1] == "dropped_malformed") m = kv[2]; if (kv[1] == "dropped_forged") f = kv[2] }
    printf "%s:%s+%s ", $1, m, f; if (m + f == 0) zero = 1 } END { exit zero }')
  local drops_ok=$?
  log "  flood: $(tail -n 1 "$NC_DIR/flood.log")"
  if [ -n "$unhealthy" ]; then
    result 7 FAIL "unhealthy during or after the flood:$unhealthy"
  elif [ "$before" != "$after" ]; then
    result 7 FAIL "the cluster changed: before '$before', after '$after'"
  elif ((drops_ok != 0)); then
    result 7 FAIL "a node counted no drop (malformed+forged): $drops"
  else
    result 7 PASS "every node healthy throughout, cluster unchanged ($after), drops malformed+forged: $drops"
  fi
}

# ------------------------------------------------------------------------ run

for n in "${SELECTED[@]}"; do
  "scenario_$n"
done

e2e_summary
