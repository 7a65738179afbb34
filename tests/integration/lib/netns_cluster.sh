# shellcheck shell=bash disable=SC2034  # sourced: the NC_* globals are for the caller
# netns_cluster.sh: a cluster of hosts made of network namespaces on bridges, for tests
# and benchmarks that need several nodes on one link. Sourced, not run (needs root,
# iproute2, nsenter, curl).
#
# Topology. A private "hub" namespace holds the bridges (br1, br2, ...; multicast
# snooping off, so multicast floods like on a dumb switch). Node i lives in namespace
# <prefix>-n<i> with lo up and, for each bridge k it is on, interface eth<k-1> (a veth
# whose peer <prefix>n<i>b<k> sits in the hub on br<k>) with address
# 198.18.<k-1>.<10+i>/24, i in 1..244. No default route and no multicast route in the
# nodes: software under test picks its interfaces itself. The root namespace is never
# touched.
#
# API (every function returns non-zero on failure; nothing exits the caller's shell):
#   nc_init NAME             start a run; sweeps leftovers of dead runs; sets NC_DIR
#                            (temp dir of the run) and NC_PREFIX. Installs no trap:
#                            callers do `trap nc_cleanup EXIT`.
#   nc_add_bridge K          bridge K (198.18.K-1.0/24) in the hub
#   nc_add_node I [K...]     namespace of node I on bridges K... (default 1)
#   nc_add_nodes I...        nodes I... on bridge 1, as `nc_add_node I` makes them, with
#                            one `ip` call per namespace and three batches for all
#                            instead of eight calls each (50 nodes: ~1 s, not ~6 s)
#   nc_add_host_node I       node I in the root network namespace, on no bridge: for
#                            edged on the Docker runtime, whose containers use the host's
#                            network (nc_exec, nc_spawn and nc_start run its commands
#                            without nsenter); give it a free `listen` port
#   nc_addr I [K]            node I's address on bridge K (default 1)
#   nc_ns I                  node I's namespace name
#   nc_dir I                 node I's directory (config, data, logs)
#   nc_config I KEY VALUE    sets an edged config key for node I (replaces an earlier
#                            value); the base config is node_name, data_dir, run_dir,
#                            api_socket, gateway_socket, runtime light, log_level info
#   nc_start I               starts edged in node I's namespace (returns at once; log in
#                            $(nc_dir I)/edged.log); NC_START_NS[I] = launch time, ns
#   nc_spawn I LOG CMD...    starts any program in node I's namespace, in the background
#                            (output to LOG); NC_SPAWN_PID = its pid. nc_cleanup kills it
#                            and everything else in the run's namespaces
#   nc_stop I [SIGNAL]       signals node I's edged (TERM) and waits (5 s, then KILL)
#   nc_kill9 I               kill -9; NC_KILL_NS = time of the kill, ns since epoch
#   nc_wipe I                forgets node I's state (data and run dirs, their mounts)
#                            and extra config; its edged must be stopped
#   nc_running I             edged of node I is alive
#   nc_healthy I             node I's API answers /api/v1/healthz
#   nc_cut I [K] / nc_restore I [K]   link of node I (bridge K, default all) down/up on
#                            the hub side, as if its cable were pulled
#   nc_partition I...        moves the br1 ports of nodes I... to a bridge of their own
#   nc_heal                  moves them back to br1
#   nc_edgectl I ARGS...     edgectl against node I
#   nc_json I                edgectl cluster -o json of node I
#   nc_api I PATH            GET of node I's API (curl over its unix socket)
#   nc_events I              node I's events (NDJSON)
#   nc_wait SECONDS CMD...   polls CMD every 0.2 s until it succeeds; 1 on timeout
#   nc_exec I CMD...         runs CMD in node I's namespace
#   nc_hub CMD...            runs CMD in the hub namespace (ip -n is quicker for ip)
#   nc_link_stats [K]        "rx_packets rx_bytes tx_packets tx_bytes" summed over the
#                            hub-side ports (of bridge K, default all); rx = what the
#                            nodes put on the wire
#   nc_static_neighbours     permanent ARP entries between all nodes added so far (per
#                            bridge). The kernel's ARP table is shared by every
#                            namespace (gc_thresh3, 1024 by default): a full mesh of
#                            ~35+ nodes (Serf's gossip) overflows it and drops packets;
#                            permanent entries do not count. Call after the last nc_add_node
#   nc_cleanup               kills what the run started, deletes its namespaces (and
#                            with them every veth and bridge), removes NC_DIR
#
# Binaries: NC_BIN (default $EDGE_BUILD_DIR/bin, else <repo>/build/bin).

NC_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NC_BIN=${NC_BIN:-${EDGE_BUILD_DIR:-$NC_LIB_DIR/../../../build}/bin}
NC_STATE_ROOT=/tmp/netns-cluster
NC_PREFIX=
NC_DIR=
NC_HUB=
declare -gA NC_PID=() NC_START_NS=() NC_BRIDGES_OF=() NC_SPAWNED=() NC_HOST_NODE=() NC_MAC=()
declare -ga NC_NODES=() NC_PARTITIONED=()
NC_KILL_NS=
NC_SPAWN_PID=

nc_log() { echo "[netns-cluster] $*" >&2; }

nc_now_ns() { date +%s%N; }

# A run owns namespaces <prefix>-*; <prefix> is ec<pid % 1000> so that interface names
# built from it stay under 15 characters. The owner's pid is recorded so that a later
# run can tell leftovers of a killed run (owner dead) from a concurrent live run.
nc_init() {
  local name=${1:-cluster}
  if [ "$(id -u)" -ne 0 ]; then
    nc_log "needs root (network namespaces)"
    return 1
  fi
  mkdir -p "$NC_STATE_ROOT"
  nc_sweep_leftovers
  local n=$(($$ % 1000)) tries=0
  while [ -e "$NC_STATE_ROOT/ec$n" ] && ((tries < 1000)); do
    n=$(((n + 1) % 1000))
    tries=$((tries + 1))
  done
  NC_PREFIX=ec$n
  mkdir "$NC_STATE_ROOT/$NC_PREFIX" || return 1
  echo "$$" >"$NC_STATE_ROOT/$NC_PREFIX/owner"
  NC_DIR=$(mktemp -d "/tmp/$name.$NC_PREFIX.XXXXXX") || return 1
  echo "$NC_DIR" >"$NC_STATE_ROOT/$NC_PREFIX/dir"
  NC_HUB=$NC_PREFIX-hub
  ip netns add "$NC_HUB" || return 1
  nc_no_ipv6 "$NC_HUB"
  ip -n "$NC_HUB" link set lo up
}

# Only 198.18.0.0/15 and loopback may appear on the links: no IPv6 link-local addresses
# (and no router solicitations or MLD reports adding noise to the byte counts).
nc_no_ipv6() {
  nsenter --net="/run/netns/$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
}

# Deletes what runs whose owner is gone left behind: processes in their namespaces,
# the namespaces, mounts and temp dirs.
nc_sweep_leftovers() {
  local d prefix owner ns
  for d in "$NC_STATE_ROOT"/ec*; do
    [ -d "$d" ] || continue
    prefix=$(basename "$d")
    owner=$(cat "$d/owner" 2>/dev/null || echo 0)
    if [ "$owner" != 0 ] && kill -0 "$owner" 2>/dev/null; then
      continue
    fi
    nc_log "removing leftovers of a dead run: $prefix"
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-" || true); do
      nc_delete_ns "$ns"
    done
    nc_remove_dir "$(cat "$d/dir" 2>/dev/null || true)"
    rm -rf "$d"
  done
  # Namespaces of ours without a state dir (killed between the two steps of nc_init).
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^ec[0-9]{1,3}-(hub|n[0-9]+)$' || true); do
    [ -d "$NC_STATE_ROOT/${ns%%-*}" ] || nc_delete_ns "$ns"
  done
}

nc_delete_ns() {
  local ns=$1 pids tries=0
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && ((tries < 50)); do
      sleep 0.1
      tries=$((tries + 1))
    done
  fi
  ip netns delete "$ns" 2>/dev/null || true
}

nc_remove_dir() {
  local dir=$1
  case $dir in /tmp/?*) ;; *) return 0 ;; esac
  [ -d "$dir" ] || return 0
  nc_unmount_under "$dir"
  rm -rf "$dir"
}

# The light runtime mounts a tmpfs under a node's run_dir and leaves it when it stops.
nc_unmount_under() {
  local m
  for m in $(awk -v r="$1/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

nc_ns() { echo "$NC_PREFIX-n$1"; }
nc_dir() { echo "$NC_DIR/n$1"; }
nc_addr() { echo "198.18.$((${2:-1} - 1)).$((10 + $1))"; }
nc_port_name() { echo "${NC_PREFIX}n$1b$2"; }

nc_add_bridge() {
  local k=$1
  if ((k < 1 || k > 9)); then
    nc_log "bridge number $k: allowed 1..9"
    return 1
  fi
  ip -n "$NC_HUB" link add "br$k" type bridge mcast_snooping 0 stp_state 0 forward_delay 0 || return 1
  ip -n "$NC_HUB" link set "br$k" up
}

nc_add_node() {
  local i=$1 k ns
  shift
  if ! [[ $i =~ ^[0-9]+$ ]] || ((i < 1 || i > 244)); then
    nc_log "node number $i: allowed 1..244 (its address is 198.18.x.<10+i>)"
    return 1
  fi
  local bridges=("$@")
  [ ${#bridges[@]} -gt 0 ] || bridges=(1)
  ns=$(nc_ns "$i")
  ip netns add "$ns" || return 1
  nc_no_ipv6 "$ns"
  ip -n "$ns" link set lo up
  for k in "${bridges[@]}"; do
    ip -n "$NC_HUB" link show "br$k" >/dev/null 2>&1 || nc_add_bridge "$k" || return 1
    ip -n "$NC_HUB" link add "$(nc_port_name "$i" "$k")" type veth peer name "eth$((k - 1))" netns "$ns" || return 1
    ip -n "$NC_HUB" link set "$(nc_port_name "$i" "$k")" master "br$k" up || return 1
    ip -n "$ns" addr add "$(nc_addr "$i" "$k")/24" dev "eth$((k - 1))" || return 1
    ip -n "$ns" link set "eth$((k - 1))" up || return 1
  done
  NC_BRIDGES_OF[$i]="${bridges[*]}"
  nc_node_files "$i"
}

nc_add_nodes() {
  local i batch='' hub=''
  for i in "$@"; do
    if ! [[ $i =~ ^[0-9]+$ ]] || ((i < 1 || i > 244)); then
      nc_log "node number $i: allowed 1..244 (its address is 198.18.x.<10+i>)"
      return 1
    fi
    batch+="netns add $(nc_ns "$i")"$'\n'
    # A MAC of our own (locally administered): nc_static_neighbours need not ask for it.
    printf -v NC_MAC[$i.1] '02:ec:00:01:%02x:%02x' $((i / 256)) $((i % 256))
    hub+="link add $(nc_port_name "$i" 1) type veth peer name eth0 address ${NC_MAC[$i.1]} netns $(nc_ns "$i")"$'\n'
    hub+="link set $(nc_port_name "$i" 1) master br1 up"$'\n'
  done
  ip -n "$NC_HUB" link show br1 >/dev/null 2>&1 || nc_add_bridge 1 || return 1
  ip -batch - <<<"$batch" || return 1
  ip -n "$NC_HUB" -batch - <<<"$hub" || return 1
  # IPv6 off before eth0 goes up (no link-local address); /proc/sys/net is the namespace's.
  for i in "$@"; do
    # shellcheck disable=SC2016  # expanded by the inner bash
    nsenter --net="/run/netns/$(nc_ns "$i")" bash -c 'for k in all default; do
        echo 1 >/proc/sys/net/ipv6/conf/$k/disable_ipv6 || exit 1
      done; exec ip -batch -' <<<"link set lo up
addr add $(nc_addr "$i" 1)/24 dev eth0
link set eth0 up" || return 1
    NC_BRIDGES_OF[$i]=1
    nc_node_files "$i"
  done
}

nc_add_host_node() {
  local i=$1
  if ! [[ $i =~ ^[0-9]+$ ]] || ((i < 1 || i > 244)); then
    nc_log "node number $i: allowed 1..244"
    return 1
  fi
  NC_HOST_NODE[$i]=1
  NC_BRIDGES_OF[$i]=
  nc_node_files "$i"
}

nc_node_files() {  # I: node I's directory and base config
  local i=$1
  NC_NODES+=("$i")
  mkdir -p "$(nc_dir "$i")"
  local d
  d=$(nc_dir "$i")
  : >"$d/config.extra"
  cat >"$d/config.base" <<EOF
node_name: n$i
data_dir: $d/data
run_dir: $d/run
api_socket: $d/edged.sock
gateway_socket: $d/gateway.sock
runtime: light
log_level: info
EOF
}

nc_config() {
  local i=$1 key=$2 value=$3 f
  f=$(nc_dir "$i")/config.extra
  grep -v -E "^$key:" "$f" >"$f.new" || true
  echo "$key: $value" >>"$f.new"
  mv "$f.new" "$f"
}

# No external command and no subshell here nor in nc_start: launching 50 nodes in a loop
# must not take seconds of forks (benchmarks time from the first launch).
nc_write_config() {
  local d=$NC_DIR/n$1 line key out=
  local -A extra=()
  while IFS= read -r line; do extra[${line%%:*}]=1; done <"$d/config.extra"
  # An extra key replaces the base one of the same name.
  while IFS= read -r line; do
    key=${line%%:*}
    [ -n "${extra[$key]:-}" ] || out+=$line$'\n'
  done <"$d/config.base"
  while IFS= read -r line; do out+=$line$'\n'; done <"$d/config.extra"
  printf '%s' "$out" >"$d/config.yaml"
}

# nsenter joins only the network namespace; `ip netns exec` would also remount /sys,
# which hides the cgroup hierarchies the light runtime checks for.
nc_exec() {
  local i=$1
  shift
  if [ -n "${NC_HOST_NODE[$i]:-}" ]; then
    "$@"
  else
    nsenter --net="/run/netns/$(nc_ns "$i")" "$@"
  fi
}

nc_hub() { nsenter --net="/run/netns/$NC_HUB" "$@"; }

nc_spawn() {
  local i=$1 log=$2
  shift 2
  if [ -n "${NC_HOST_NODE[$i]:-}" ]; then
    "$@" >>"$log" 2>&1 </dev/null &
  else
    nsenter --net="/run/netns/$(nc_ns "$i")" "$@" >>"$log" 2>&1 </dev/null &
  fi
  NC_SPAWN_PID=$!
  NC_SPAWNED[$NC_SPAWN_PID]=$i
}

nc_start() {
  local i=$1 d=$NC_DIR/n$1 now=${EPOCHREALTIME/./}
  if nc_running "$i"; then
    nc_log "node $i: edged already runs (pid ${NC_PID[$i]})"
    return 1
  fi
  nc_write_config "$i"
  [ -d "$d/data" ] && [ -d "$d/run" ] || mkdir -p "$d/data" "$d/run"
  TZ=UTC0 printf -- '--- start %(%FT%T)T.%sZ\n' "${now:0:-6}" "${now: -6}" >>"$d/edged.log"
  NC_START_NS[$i]=${now}000
  # Not through nc_spawn: a command substitution would make edged a grandchild, and
  # nc_stop wants to `wait` for it.
  if [ -n "${NC_HOST_NODE[$i]:-}" ]; then
    "$NC_BIN/edged" -c "$d/config.yaml" >>"$d/edged.log" 2>&1 </dev/null &
  else
    nsenter --net="/run/netns/$NC_PREFIX-n$i" "$NC_BIN/edged" -c "$d/config.yaml" \
      >>"$d/edged.log" 2>&1 </dev/null &
  fi
  NC_PID[$i]=$!
}

nc_wipe() {
  local d
  d=$(nc_dir "$1")
  nc_unmount_under "$d"
  rm -rf "$d/data" "$d/run"
  : >"$d/config.extra"
}

nc_running() {
  local pid=${NC_PID[$1]:-}
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

nc_stop() {
  local i=$1 sig=${2:-TERM} pid=${NC_PID[$1]:-} tries=0
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((tries < 50)); do
    sleep 0.1
    tries=$((tries + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    nc_log "node $i: edged (pid $pid) did not stop on SIG$sig within 5 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "NC_PID[$i]"
}

nc_kill9() {
  local i=$1 pid=${NC_PID[$1]:-}
  if [ -z "$pid" ]; then
    nc_log "node $i: edged is not running"
    return 1
  fi
  NC_KILL_NS=$(nc_now_ns)
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  unset "NC_PID[$i]"
}

nc_node_ports() {  # I [K] -> hub-side port names
  local i=$1 k
  for k in ${2:-${NC_BRIDGES_OF[$i]}}; do nc_port_name "$i" "$k"; done
}

nc_cut() {
  local p
  for p in $(nc_node_ports "$1" "${2:-}"); do ip -n "$NC_HUB" link set "$p" down || return 1; done
}

nc_restore() {
  local p
  for p in $(nc_node_ports "$1" "${2:-}"); do ip -n "$NC_HUB" link set "$p" up || return 1; done
}

nc_partition() {
  local i
  if ! ip -n "$NC_HUB" link show brp >/dev/null 2>&1; then
    ip -n "$NC_HUB" link add brp type bridge mcast_snooping 0 stp_state 0 forward_delay 0 || return 1
    ip -n "$NC_HUB" link set brp up
  fi
  for i in "$@"; do
    ip -n "$NC_HUB" link set "$(nc_port_name "$i" 1)" master brp || return 1
    NC_PARTITIONED+=("$i")
  done
}

nc_heal() {
  local i
  for i in "${NC_PARTITIONED[@]}"; do
    ip -n "$NC_HUB" link set "$(nc_port_name "$i" 1)" master br1 || return 1
  done
  NC_PARTITIONED=()
}

nc_edgectl() {
  local i=$1
  shift
  "$NC_BIN/edgectl" --host "unix://$(nc_dir "$i")/edged.sock" "$@"
}

nc_json() { nc_edgectl "$1" cluster -o json; }

nc_api() { curl -fsS -m 5 --unix-socket "$(nc_dir "$1")/edged.sock" "http://node$2"; }

nc_events() { nc_api "$1" /api/v1/events; }

nc_healthy() { nc_api "$1" /api/v1/healthz >/dev/null 2>&1; }

nc_wait() {
  local limit=$1 deadline
  shift
  deadline=$(($(date +%s%N) + limit * 1000000000))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s%N) < deadline)) || return 1
    sleep 0.2
  done
}

nc_static_neighbours() {
  local i k
  declare -A mac=() lines=()
  for i in "${NC_NODES[@]}"; do
    for k in ${NC_BRIDGES_OF[$i]}; do
      mac[$i.$k]=${NC_MAC[$i.$k]:-$(ip -n "$(nc_ns "$i")" -br link show "eth$((k - 1))" | awk '{print $3}')}
      # $(nc_addr) is a fork: 200 nodes x 200 entries of them took half a minute.
      lines[$k]+="neigh replace 198.18.$((k - 1)).$((10 + i)) lladdr ${mac[$i.$k]} dev eth$((k - 1)) nud permanent"$'\n'
    done
  done
  # Every node gets the whole list of its bridges, its own address included: a neighbour
  # entry for a local address is never used (local traffic goes through lo).
  for i in "${NC_NODES[@]}"; do
    local batch=
    for k in ${NC_BRIDGES_OF[$i]}; do batch+=${lines[$k]}; done
    [ -z "$batch" ] || ip -n "$(nc_ns "$i")" -batch - <<<"$batch" || return 1
  done
}

nc_link_stats() {
  # /sys shows the namespace that mounted it; `ip -s` reads the hub's own counters.
  ip -n "$NC_HUB" -s -j link show type veth | python3 -c '
import json, sys
k = sys.argv[1]
tot = [0, 0, 0, 0]
for l in json.load(sys.stdin):
    if k and not l["ifname"].endswith("b" + k):
        continue
    s = l["stats64"]
    for j, v in enumerate((s["rx"]["packets"], s["rx"]["bytes"], s["tx"]["packets"], s["tx"]["bytes"])):
        tot[j] += v
print(*tot)' "${1:-}"
}

nc_cleanup() {
  local i pid ns
  [ -n "$NC_PREFIX" ] || return 0
  for i in "${!NC_PID[@]}"; do kill -9 "${NC_PID[$i]}" 2>/dev/null || true; done
  for pid in "${!NC_SPAWNED[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for i in "${!NC_PID[@]}"; do wait "${NC_PID[$i]}" 2>/dev/null || true; done
  for pid in "${!NC_SPAWNED[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NC_PREFIX-" || true); do
    nc_delete_ns "$ns"
  done
  if [ -n "${NC_KEEP:-}" ]; then
    for i in "${NC_NODES[@]}"; do nc_unmount_under "$(nc_dir "$i")"; done
    nc_log "NC_KEEP set: logs kept in $NC_DIR"
  else
    nc_remove_dir "$NC_DIR"
  fi
  rm -rf "${NC_STATE_ROOT:?}/$NC_PREFIX"
  NC_PID=()
  NC_SPAWNED=()
  NC_HOST_NODE=()
  NC_PREFIX=
}
