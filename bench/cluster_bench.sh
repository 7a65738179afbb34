#!/usr/bin/env bash
# Cluster benchmark (issue 15, section 5): cluster-wide deployment by edged against
# Docker Swarm, on the same topology (one network namespace per node on a bridge,
# tests/integration/lib/netns_cluster.sh) and in the same run.
#
#   bench/cluster_bench.sh [--sizes 20,...] [--only swarm|edged] [--quick] [--idle S] [--keep]
#   --sizes: node counts of the scale figure (5 replicas a node: 20 -> 100 replicas on 20
#            nodes); the other figures always use 3 nodes
#   --quick: --sizes 3 (15 replicas on 3 nodes) and 3 s of idle before the memory figure:
#            3 nodes only, CI's smoke check (about 35 s on 2 cores)
#   --idle S: how long the nodes stay idle before the memory figure (default 10)
#   (root; dockerd, containerd and runc installed, the docker CLI; build/images/hello.tar
#   from `ninja edge_test_images`; EDGE_BUILD_DIR=build. The host's own dockerd is
#   neither needed nor touched.) Run it under the shared lock:
#     flock /work/wt/netns.lock bench/cluster_bench.sh
#   The default run (3 nodes, then 20) takes about 70 s on 2 cores: the 3-node figures
#   ~38 s (Swarm's re-placement ~17-20 s of it, the idle 10 s), 20 dockerds up and
#   joined ~10 s, 100 replicas ~11 s. Every wait is bounded (daemons and joins 60 s,
#   apply 60 s, re-placement 90 s, scale 120 s) and each phase prints how long it took.
#
# The workload: edgecloud/hello:latest (examples/README.md: static busybox httpd on
# $PORT), loaded into every node (`docker load`), no registry. Replica k of service s
# listens on port 2<s><k, 3 digits> on its node's host network (Swarm: --network host,
# env SLOT={{.Task.Slot}}, command sh -c 'PORT=$((2<s>000 + SLOT)) exec hello-httpd'), so
# that replicas can share a node.
#
# Serving, not running: a replica counts once it answers HTTP 200 on its node. One
# watcher per wait (bench/cluster_poll.py serving), in a client namespace on the bridge
# (node 240, 198.18.0.250), asks no orchestrator: every 50 ms it asks each node's
# namespace for its listening TCP sockets (inet_diag over netlink: no traffic, and
# cheap where reading /proc/PID/net/tcp walks the kernel's whole socket hash, ~2 ms a
# read), sends `GET /` (0.5 s timeout) to each newly listening (node, port), and a port
# serves from its first 200 until its socket leaves that node. The figure is the moment every port
# of the service serves at once (the last first-200); all are asked once more at the end.
# Its CPU seconds are printed (watcher_cpu_s).
#
# Swarm here: one dockerd per node namespace, started with
# `nsenter --net=/run/netns/NS unshare --uts` (not `ip netns exec`, which remounts /sys
# and leaves dockerd without its cgroups), its own --data-root, --exec-root,
# -H unix://..., --pidfile, --cgroup-parent, --iptables=false --bridge=none, local
# networks from 198.19.128.0/17 and swarm networks from 198.19.0.0/17 (no address
# outside 198.18.0.0/15), DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (a task uses the loaded
# image instead of trying a registry first: "images present"). `swarm init` on node 1
# (the one manager), `swarm join` as workers on the others with --advertise-addr their
# 198.18 address. Swarm's timers are its defaults (dispatcher heartbeat 5 s).
# `docker service create -d --no-resolve-image --network host`.
#
# Figures (edged: none yet; each edged function says "not measured" and shows "-"):
#  apply_3           apply -> 3 replicas serving on 3 nodes: from the start of
#                    `docker service create --replicas 3` until all 3 serve; the median
#                    of 3 services applied one after the other (the first stays, the
#                    other two are removed again; --quick: one). Also shown: each
#                    sample, the CLI call's own time and Swarm's own "running" (the
#                    latest task Status.Timestamp, set when an agent saw its container
#                    run) from the same start.
#  node_kill_3       a node killed whole: kill -9 of every process in a worker's
#                    namespace (dockerd, containerd, shims, the containers) -> the
#                    service's 3 replicas serve again (the killed node's moved to the
#                    two others); from the kill. Also: when the manager marked the node
#                    down (its UpdatedAt with state down), Swarm's own "running" of the
#                    replacements, and the time until all 3 services' 9 replicas serve.
#  scale_N           5N replicas on N fresh nodes (images present) until all serve,
#                    bounded at 120 s; from the start of `docker service create`.
#  mem_rss / mem_pss memory per node, idle, with 3 services of 3 replicas (one of each
#                    on every node), after --idle seconds: dockerd + containerd + shims
#                    (containerd-shim-runc-v2) of the node from /proc/PID/smaps_rollup,
#                    the containers' own processes not counted; mean over the 3 nodes
#                    in MiB, each node in the notes (n1 is the manager). PSS splits
#                    pages shared between the nodes' daemons (the same binaries), which
#                    separate machines would not share: RSS is the per-machine figure.
#  crash, scheduler  edged only (kill -9 of edged / of the supernode: re-placements and
#                    restarts; the scheduler alone, placements/s at 100 nodes).
# Prints a table and `ratio <what> <edged/swarm>` lines (below 1: edged is better). A
# requested figure that is missing or failed shows "-" (its ratio too) and the run
# exits 1 listing each with why; edged's "not measured" ones are listed, not failed.
# Everything is cleaned up on exit (also after a kill: the next run sweeps the
# leftovers: processes and namespaces by netns_cluster.sh, the cgroups here).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGE_BUILD_DIR:-$ROOT/build}
export NC_BIN=$BUILD/bin
IMAGE_TAR=$BUILD/images/hello.tar
IMAGE=edgecloud/hello:latest
SIZES=20
ONLY=both
IDLE=10
APPLY_RUNS=3
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --quick) SIZES=3; IDLE=3; APPLY_RUNS=1; shift ;;
    --idle) IDLE=$2; shift 2 ;;
    --keep) export NC_KEEP=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster_bench: unknown argument '$1' (allowed: --sizes N,N,... --only swarm|edged --quick --idle S --keep)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a NS <<<"$SIZES"
MAXN=3
for n in "${NS[@]}"; do
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 3 || n > 100)); then
    echo "cluster_bench: --sizes: '$n' is not a node count in 3..100" >&2
    exit 2
  fi
  ((n > MAXN)) && MAXN=$n
done
[[ $IDLE =~ ^[0-9]+$ ]] || { echo "cluster_bench: --idle $IDLE: a number of seconds" >&2; exit 2; }
case $ONLY in both | edged | swarm) ;; *) echo "cluster_bench: --only $ONLY: allowed swarm, edged" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
  echo "cluster_bench: needs root (network namespaces)" >&2
  exit 2
fi
if [ "$ONLY" != edged ]; then
  for b in dockerd containerd runc docker unshare; do
    command -v "$b" >/dev/null || { echo "cluster_bench: $b not installed (Swarm half)" >&2; exit 2; }
  done
  [ -f "$IMAGE_TAR" ] || { echo "cluster_bench: $IMAGE_TAR missing (ninja -C build edge_test_images)" >&2; exit 2; }
fi

# shellcheck source=../tests/integration/lib/netns_cluster.sh
. "$ROOT/tests/integration/lib/netns_cluster.sh"
POLL=(python3 "$ROOT/bench/cluster_poll.py")
CLIENT=240  # the watcher's namespace: on the bridge, runs nothing else
nc_init cluster-bench || exit 2

# Cgroups: each dockerd's containers go under /clusterbench-<prefix>-n<i> in every
# hierarchy. Those of runs no longer alive (netns_cluster.sh removed their state dir, or
# their owner is gone) are removed, empty ones only.
cg_sweep() {  # [PREFIX: only this run's]
  local d p owner
  for d in /sys/fs/cgroup/*/clusterbench-ec* /sys/fs/cgroup/clusterbench-ec*; do
    [ -d "$d" ] || continue
    p=${d##*/clusterbench-}
    p=${p%%-*}
    if [ -n "${1:-}" ]; then
      [ "$p" = "$1" ] || continue
    elif [ "$p" != "$NC_PREFIX" ]; then
      owner=$(cat "$NC_STATE_ROOT/$p/owner" 2>/dev/null || echo 0)
      [ "$owner" != 0 ] && kill -0 "$owner" 2>/dev/null && continue
    fi
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
}
cg_sweep

bench_cleanup() {
  local prefix=$NC_PREFIX
  [ -n "${POLL_PID:-}" ] && kill -9 "$POLL_PID" 2>/dev/null
  nc_cleanup
  [ -n "$prefix" ] && cg_sweep "$prefix"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench $(date +%T)] $*" >&2; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
RUN_T0=$(now)

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
  nc_add_nodes $(seq "$MAXN") "$CLIENT" || return 1
  nc_static_neighbours
}
log "topology: $MAXN nodes and a client namespace on one bridge ($NC_DIR); load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
if [ "$ONLY" != edged ]; then
  log "swarm: $(dockerd --version), containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR == 1 {print $3}'), CLI $(docker --version | awk '{print $3}' | tr -d ,)"
fi
phase "topology_$MAXN" setup_topology || exit 2

declare -A R=()
WATCH_CPU=0
add_cpu() {  # VAR SECONDS
  printf -v "$1" '%s' "$(awk -v a="${!1}" -v b="$2" 'BEGIN { printf "%.3f", a + b }')"
}

# ports S R: the ports of service S's replicas 1..R (2<S><k, 3 digits>)
ports() {
  local k out=
  for k in $(seq "$2"); do printf -v out '%s2%d%03d,' "$out" "$1" "$k"; done
  echo "${out%,}"
}

# serving_start NAME TIMEOUT PORTS ADDR=PID...: a watcher in the client namespace, in the
# background (POLL_PID); serving_wait NAME collects it: SERVED_NS = the moment all served.
POLL_PID=
serving_start() {
  local name=$1 limit=$2 ports=$3
  shift 3
  nsenter --net="/run/netns/$(nc_ns "$CLIENT")" "${POLL[@]}" serving "$limit" "$ports" "$@" \
    >"$NC_DIR/serving-$name.out" 2>"$NC_DIR/serving-$name.err" &
  POLL_PID=$!
}
SERVED_NS=
serving_wait() {
  local name=$1 pid=${2:-$POLL_PID} rc cost
  wait "$pid"
  rc=$?
  [ "$pid" = "$POLL_PID" ] && POLL_PID=
  SERVED_NS=$(grep -o 'done_ns=[0-9]*' "$NC_DIR/serving-$name.out" | cut -d= -f2)
  cost=$(grep -o 'cpu_s=[0-9.]*' "$NC_DIR/serving-$name.out" | cut -d= -f2)
  add_cpu WATCH_CPU "${cost:-0}"
  ((rc == 0)) || log "$name: $(tail -2 "$NC_DIR/serving-$name.err" | head -c 600)"
  return $rc
}

# first_served NAME T0: "<first>/<median>s": when the first replica and half of them
# served, from the watcher's per-port lines
first_served() {
  awk -v t0="$2" 'NF == 3 && $1 ~ /^[0-9]+$/ { printf "%.3f\n", ($3 - t0) / 1e9 }' "$NC_DIR/serving-$1.out" |
    sort -n | awk '{ t[NR] = $1 } END { if (NR) printf "%s/%ss", t[1], t[int((NR + 1) / 2)]; else printf "-" }'
}

# ---------------------------------------------------------------- swarm

export DOCKER_CONFIG=$NC_DIR/docker-cli  # the CLI reads no config of the host's user
dk() {  # I ARGS...: the docker CLI against node I's dockerd (30 s at most: a wedged daemon)
  local i=$1
  shift
  timeout 30 docker -H "unix://$NC_DIR/n$i/docker.sock" "$@"
}

declare -A SW_PID=()  # node index -> its dockerd (nsenter, unshare and bash exec it)
# dockerd in node I's namespace, with a hostname of its own (n<I>, so Swarm's node list
# reads like the topology). The wrapper closes every inherited descriptor above 2: the
# caller's `flock` holds the shared lock on one, and a daemon left by a killed run must
# not keep holding it.
swarm_daemon_start() {  # I
  local i=$1 d=$NC_DIR/n$1
  mkdir -p "$d/docker"
  # shellcheck disable=SC2016  # expanded by the inner bash
  nc_spawn "$i" "$d/dockerd.log" unshare --uts bash -c '
    for fd in /proc/self/fd/*; do fd=${fd##*/}; ((fd > 2)) && [ -e "/proc/self/fd/$fd" ] && eval "exec $fd>&-"; done
    hostname "$0" && export DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 && exec "$@"' "n$i" \
    dockerd --data-root "$d/docker/data" --exec-root "$d/docker/exec" -H "unix://$d/docker.sock" \
    --pidfile "$d/docker.pid" --iptables=false --bridge=none --cgroup-parent "/clusterbench-$NC_PREFIX-n$i" \
    --default-address-pool base=198.19.128.0/17,size=24 --log-level warn
  SW_PID[$i]=$NC_SPAWN_PID
}

swarm_daemons_up() {  # I...: starts them all, then waits for each (60 s in all)
  local i deadline=$(($(now) + 60000000000))
  for i in "$@"; do swarm_daemon_start "$i"; done
  for i in "$@"; do
    until dk "$i" version >/dev/null 2>&1; do
      if (($(now) > deadline)) || ! kill -0 "${SW_PID[$i]}" 2>/dev/null; then
        log "swarm: dockerd of n$i does not answer: $(tail -3 "$NC_DIR/n$i/dockerd.log" | tr '\n' ' ' | head -c 600)"
        return 1
      fi
      sleep 0.1
    done
  done
}

declare -A SW_ID=()  # node index -> swarm node id
SW_NODEMAP=
# swarm_up I...: daemons, image loaded into each, init on the first, the others join as
# workers; until the manager lists them all Ready (60 s).
swarm_up() {
  local first=$1 i tok pids=() rc=0 ready deadline
  swarm_daemons_up "$@" || return 1
  for i in "$@"; do
    dk "$i" load -q -i "$IMAGE_TAR" >"$NC_DIR/n$i/load.out" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  ((rc == 0)) || { log "swarm: docker load failed: $(cat "$NC_DIR"/n*/load.out | grep -v Loaded | head -3)"; return 1; }
  dk "$first" swarm init --advertise-addr "$(nc_addr "$first")" --listen-addr "$(nc_addr "$first"):2377" \
    --default-addr-pool 198.19.0.0/17 --default-addr-pool-mask-length 24 >/dev/null || return 1
  tok=$(dk "$first" swarm join-token -q worker) || return 1
  pids=()
  for i in "${@:2}"; do
    timeout 60 docker -H "unix://$NC_DIR/n$i/docker.sock" swarm join --token "$tok" \
      --advertise-addr "$(nc_addr "$i")" --listen-addr "$(nc_addr "$i"):2377" "$(nc_addr "$first"):2377" \
      >"$NC_DIR/n$i/join.out" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  ((rc == 0)) || { log "swarm: a join failed: $(grep -hv 'joined a swarm' "$NC_DIR"/n*/join.out | head -3)"; return 1; }
  deadline=$(($(now) + 60000000000))
  while ready=$(dk "$first" node ls --format '{{.Status}}' | grep -c Ready); ((ready < $#)); do
    (($(now) < deadline)) || { log "swarm: $ready of $# nodes Ready after 60s"; return 1; }
    sleep 0.2
  done
  SW_NODEMAP=
  for i in "$@"; do
    SW_ID[$i]=$(dk "$i" info --format '{{.Swarm.NodeID}}')
    SW_NODEMAP+="${SW_ID[$i]}=n$i,"
  done
}

swarm_reap() {  # I...: waits for those nodes' killed daemons (bash's "Killed" notice goes nowhere)
  local i pid
  for i in "$@"; do
    for pid in "${!NC_SPAWNED[@]}"; do
      [ "${NC_SPAWNED[$pid]}" = "$i" ] || continue
      wait "$pid" 2>/dev/null
      unset "NC_SPAWNED[$pid]"
    done
  done
}

# kill_nodes I...: kill -9 of every process in those nodes' namespaces (a process gone
# between the listing and the kill is no error); the daemons we started are reaped
# here, where bash's "Killed" notices go nowhere.
kill_nodes() {
  local i
  {
    for i in "$@"; do
      # shellcheck disable=SC2046
      kill -9 $(ip netns pids "$(nc_ns "$i")")
    done
    swarm_reap "$@"
  } 2>/dev/null
}

# swarm_down I...: every process of those nodes killed, their Docker state and cgroups gone
swarm_down() {
  local i pids tries=0
  kill_nodes "$@"
  for i in "$@"; do
    while pids=$(ip netns pids "$(nc_ns "$i")") && [ -n "$pids" ] && ((tries++ < 50)); do sleep 0.1; done
    nc_unmount_under "$NC_DIR/n$i/docker"
    rm -rf "$NC_DIR/n$i/docker" "$NC_DIR/n$i/docker.sock" "$NC_DIR/n$i/docker.pid"
  done
  cg_sweep "$NC_PREFIX"
}

nodes_arg() {  # I...: ADDR=NETNS of each node, for the watcher
  local i
  for i in "$@"; do echo "$(nc_addr "$i")=/run/netns/$(nc_ns "$i")"; done
}

# swarm_service S REPLICAS: service s<S> of the hello image, replica k on port 2<S><k>
swarm_service() {
  dk 1 service create -d -q --name "s$1" --replicas "$2" --network host --no-resolve-image \
    --env 'SLOT={{.Task.Slot}}' "$IMAGE" sh -c "PORT=\$((2${1}000 + SLOT)) exec /usr/bin/hello-httpd" >/dev/null
}

# swarm_tasks S [N] -> "running=<n> last_running_ns=<ns> placement=n1:1,..." (Swarm's
# view). With N: until the manager has N of them running (5 s at most): a replica can
# serve before its agent's report reached the manager (seen: 3 serving, 2 running).
swarm_tasks() {
  local ids out tries=0
  while :; do
    ids=$(dk 1 service ps -q --filter desired-state=running "s$1") || return 1
    # shellcheck disable=SC2086
    out=$(dk 1 inspect $ids | "${POLL[@]}" tasks "$SW_NODEMAP") || return 1
    if [ -z "${2:-}" ] || [ "$(kv running "$out")" = "$2" ] || ((tries++ >= 50)); then
      echo "$out"
      return 0
    fi
    sleep 0.1
  done
}

kv() {  # KEY "k=v k=v ...": the value of KEY
  local p
  for p in $2; do [ "${p%%=*}" = "$1" ] && { echo "${p#*=}"; return 0; }; done
  echo -
}

since() {  # T0 NS: seconds from T0 to NS, or - when NS is not a time
  [[ ${2:-} =~ ^[1-9][0-9]+$ ]] && secs "$1" "$2" || echo -
}

# swarm_apply S: one apply of service s<S>, 3 replicas, until all 3 serve (60 s);
# APPLY="<serving s> <CLI s> <Swarm's running s> <placement>", or why it failed
APPLY=
swarm_apply() {
  local s=$1 t0 t1 out
  # shellcheck disable=SC2046
  serving_start "apply$s" 60 "$(ports "$s" 3)" $(nodes_arg 1 2 3)
  t0=$(now)
  if ! swarm_service "$s" 3; then
    kill "$POLL_PID" 2>/dev/null
    serving_wait "apply$s"
    APPLY="fail: docker service create failed"
    return 1
  fi
  t1=$(now)
  if ! serving_wait "apply$s"; then
    APPLY="fail: 3 replicas of s$s did not serve within 60s: $(tail -1 "$NC_DIR/serving-apply$s.err" | head -c 300)"
    return 1
  fi
  out=$(swarm_tasks "$s" 3)
  APPLY="$(secs "$t0" "$SERVED_NS") $(secs "$t0" "$t1") $(since "$t0" "$(kv last_running_ns "$out")") $(kv placement "$out")"
  log "swarm: s$s: 3 replicas serving $(secs "$t0" "$SERVED_NS")s after the apply (CLI returned after $(secs "$t0" "$t1")s, Swarm's own running $(since "$t0" "$(kv last_running_ns "$out")")s; $out)"
}

median() {  # numbers -> the middle one (the lower of the two middle ones)
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# wait_closed TIMEOUT PORTS ADDR=NETNS...: until no node listens on any of PORTS
wait_closed() {
  local limit=$1 ports=$2 deadline
  shift 2
  deadline=$(($(now) + limit * 1000000000))
  while [ -n "$("${POLL[@]}" listening "$ports" "$@")" ]; do
    (($(now) < deadline)) || return 1
    sleep 0.2
  done
}

swarm_small() {
  local out
  log "swarm: 3 nodes (n1 manager, n2 n3 workers)"
  if ! phase swarm_up_3 swarm_up 1 2 3; then
    R[swarm_apply_3]="fail: the 3-node swarm did not come up"
    return 1
  fi
  # 1. apply -> 3 replicas serving: s1, then s4 and s5 (removed again) for a median
  local k sample svcs=(1 4 5) serve=() cli=() run=()
  for k in $(seq "$APPLY_RUNS"); do
    if ! swarm_apply "${svcs[k - 1]}"; then
      R[swarm_apply_3]=$APPLY
      return 1
    fi
    read -r -a sample <<<"$APPLY"
    serve+=("${sample[0]}")
    cli+=("${sample[1]}")
    run+=("${sample[2]}")
    R[swarm_apply_place_3]+="${R[swarm_apply_place_3]:+ }${sample[3]}"
  done
  R[swarm_apply_3]=$(median "${serve[@]}")
  R[swarm_apply_samples_3]="${serve[*]}"
  R[swarm_apply_cli_3]="${cli[*]}"
  R[swarm_apply_running_3]="${run[*]}"
  if ((APPLY_RUNS > 1)); then
    dk 1 service rm s4 s5 >/dev/null
    # shellcheck disable=SC2046
    if ! wait_closed 30 "$(ports 4 3),$(ports 5 3)" $(nodes_arg 1 2 3); then
      log "swarm: s4 and s5 still listen 30 s after their removal"
    fi
  fi
  log "swarm: apply -> 3 replicas serving, median of $APPLY_RUNS: ${R[swarm_apply_3]}s (${serve[*]})"

  # 4. memory, idle, with 3 services
  if ! { swarm_service 2 3 && swarm_service 3 3; }; then
    R[swarm_mem_rss_3]="fail: docker service create failed"
    return 1
  fi
  # shellcheck disable=SC2046
  serving_start services 60 "$(ports 1 3),$(ports 2 3),$(ports 3 3)" $(nodes_arg 1 2 3)
  if ! serving_wait services; then
    R[swarm_mem_rss_3]="fail: 3 services did not serve within 60s"
    R[swarm_mem_pss_3]=${R[swarm_mem_rss_3]}
  else
    log "swarm: 3 services serving ($(swarm_tasks 2 3 | grep -o 'placement=.*'), $(swarm_tasks 3 3 | grep -o 'placement=.*')); idle ${IDLE}s"
    sleep "$IDLE"
    local i rss=0 pss=0 notes=
    for i in 1 2 3; do
      # shellcheck disable=SC2046
      out=$("${POLL[@]}" mem $(ip netns pids "$(nc_ns "$i")"))
      read -r _ _ r p < <(grep '^total' <<<"$out")
      rss=$((rss + r))
      pss=$((pss + p))
      notes+="n$i $(awk '$1 == "total" { t = sprintf("%.1f/%.1f", $3 / 1024, $4 / 1024); next }
        { d = d sprintf("%s%s %.1f/%.1f", (d == "" ? "" : ", "), ($2 > 1 ? $2 " " : "") $1, $3 / 1024, $4 / 1024) }
        END { printf "%s (%s)", t, d }' <<<"$out"); "
    done
    R[swarm_mem_rss_3]=$(awk -v a="$rss" 'BEGIN { printf "%.1f", a / 3 / 1024 }')
    R[swarm_mem_pss_3]=$(awk -v a="$pss" 'BEGIN { printf "%.1f", a / 3 / 1024 }')
    R[swarm_mem_notes]="RSS/PSS MiB: ${notes%; }"
    log "swarm: memory per node, mean RSS ${R[swarm_mem_rss_3]} MiB, PSS ${R[swarm_mem_pss_3]} MiB (${R[swarm_mem_notes]})"
  fi

  # 2. node killed whole
  out=$(swarm_tasks 1 3)
  R[swarm_kill_before_3]=$(kv placement "$out")
  if ! [[ ${R[swarm_kill_before_3]} =~ n3:[1-9] ]]; then
    R[swarm_kill_3]="fail: no replica of s1 on n3 to re-place (placement ${R[swarm_kill_before_3]})"
    return 1
  fi
  local all_pid
  log "swarm: kill -9 of every process of n3 ($(ip netns pids "$(nc_ns 3)" | wc -l) processes: dockerd, containerd, shims, containers)"
  t0=$(now)
  kill_nodes 3
  # shellcheck disable=SC2046
  serving_start kill_all 90 "$(ports 1 3),$(ports 2 3),$(ports 3 3)" $(nodes_arg 1 2 3)
  all_pid=$POLL_PID
  # shellcheck disable=SC2046
  serving_start kill 90 "$(ports 1 3)" $(nodes_arg 1 2 3)
  if serving_wait kill; then
    R[swarm_kill_3]=$(secs "$t0" "$SERVED_NS")
    log "swarm: s1's 3 replicas serving again ${R[swarm_kill_3]}s after the kill"
  else
    R[swarm_kill_3]="fail: s1's 3 replicas did not serve again within 90s of the kill: $(tail -1 "$NC_DIR/serving-kill.err" | head -c 300)"
  fi
  serving_wait kill_all "$all_pid" && R[swarm_kill_all_3]=$(secs "$t0" "$SERVED_NS")
  out=$(swarm_tasks 1 3)
  R[swarm_kill_running_3]=$(since "$t0" "$(kv last_running_ns "$out")")
  R[swarm_kill_after_3]=$(kv placement "$out")
  read -r state upd < <(dk 1 node inspect "${SW_ID[3]}" | "${POLL[@]}" node)
  if [ "${state:-}" = down ]; then
    R[swarm_down_3]=$(since "$t0" "$upd")
  else
    R[swarm_down_3]="n3 is ${state:-?} for the manager"
  fi
  log "swarm: n3 marked down ${R[swarm_down_3]}s after the kill; s1 running again by Swarm ${R[swarm_kill_running_3]}s (${R[swarm_kill_before_3]} -> ${R[swarm_kill_after_3]}); all 9 replicas serving ${R[swarm_kill_all_3]:--}s"
  [[ ${R[swarm_kill_3]} =~ ^[0-9] ]]
}

swarm_scale() {  # N
  local n=$1 reps=$(($1 * 5)) t0 t1 out all
  all=$(seq "$n")
  log "swarm: $n fresh nodes, then $reps replicas"
  # shellcheck disable=SC2086
  if ! phase "swarm_up_$n" swarm_up $all; then
    R[swarm_scale_$n]="fail: the $n-node swarm did not come up"
    return 1
  fi
  # shellcheck disable=SC2046,SC2086
  serving_start "scale_$n" 120 "$(ports 9 "$reps")" $(nodes_arg $all)
  t0=$(now)
  swarm_service 9 "$reps" || { R[swarm_scale_$n]="fail: docker service create failed"; return 1; }
  t1=$(now)
  if serving_wait "scale_$n"; then
    R[swarm_scale_$n]=$(secs "$t0" "$SERVED_NS")
    R[swarm_scale_first_$n]=$(first_served "scale_$n" "$t0")
  else
    R[swarm_scale_$n]="fail: $reps replicas did not all serve within 120s: $(tail -1 "$NC_DIR/serving-scale_$n.err" | head -c 300)"
  fi
  out=$(swarm_tasks 9 "$reps")
  R[swarm_scale_cli_$n]=$(secs "$t0" "$t1")
  R[swarm_scale_running_$n]=$(since "$t0" "$(kv last_running_ns "$out")")
  R[swarm_scale_place_$n]=$(kv placement "$out")
  log "swarm: $reps replicas on $n nodes serving ${R[swarm_scale_$n]}s after the apply (first and median ${R[swarm_scale_first_$n]:--}; CLI ${R[swarm_scale_cli_$n]}s, Swarm's own running ${R[swarm_scale_running_$n]}s; $out)"
  [[ ${R[swarm_scale_$n]} =~ ^[0-9] ]]
}

# ---------------------------------------------------------------- edged
# Cluster-scoped services (issue 15) do not exist yet. Each figure has its function here,
# to be filled in the way swarm_small and swarm_scale take theirs, on the same nodes:
# nc_start per node (nc_config for its config), the same image (build/images/hello.tar),
# replica k of service s listening on port 2<s><k, 3 digits> in its node's namespace
# (`ports S R` lists them), the same watcher (serving_start NAME TIMEOUT PORTS
# $(nodes_arg I...), then serving_wait NAME: SERVED_NS), the apply as the median of 3
# (median), the same kill (kill_nodes I: every process of the node's namespace, edged,
# its shims and the containers), the memory from `cluster_poll.py mem` (it counts edged
# and edge-shim) after --idle seconds. Each sets the R[...] keys below to a number, or
# to why it failed ("fail: ..."); the table, the ratios and the exit status follow.
# Stop edged's nodes before the Swarm half starts (edged_stop_all-like, nc_stop).

EDGED_TODO="not measured: cluster scope (issue 15) not built yet"
edged_not_built() {  # KEY...
  local k
  for k in "$@"; do R[$k]=$EDGED_TODO; done
  log "edged: $EDGED_TODO ($*)"
}
edged_apply() { edged_not_built edged_apply_3; }        # apply -> 3 replicas serving, 3 nodes
edged_kill() { edged_not_built edged_kill_3; }          # node killed whole -> serving elsewhere
edged_crash() { edged_not_built edged_crash_replaced edged_crash_restarts; }  # kill -9 of edged / the supernode
edged_scale() { edged_not_built "edged_scale_$1"; }     # 5N replicas on N nodes
edged_scheduler() { edged_not_built edged_sched; }      # the scheduler alone, 100 nodes, placements/s
edged_memory() { edged_not_built edged_mem_rss_3 edged_mem_pss_3; }  # per node, idle, 3 services

# ---------------------------------------------------------------- run

if [ "$ONLY" != swarm ]; then
  edged_apply
  edged_memory
  edged_kill
  edged_crash
  edged_scheduler
  for n in "${NS[@]}"; do edged_scale "$n"; done
fi
if [ "$ONLY" != edged ]; then
  phase swarm_3 swarm_small
  phase swarm_down_3 swarm_down 1 2 3
  for n in "${NS[@]}"; do
    phase "swarm_scale_$n" swarm_scale "$n"
    # shellcheck disable=SC2046
    phase "swarm_down_$n" swarm_down $(seq "$n")
  done
fi

# fig KEY: R[KEY] when it is a figure, else "-"
fig() {
  local v=${R[$1]:-}
  if [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]]; then echo "$v"; else echo -; fi
}
ratio() {  # A B -> A/B, or - when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.3g", a / b; else printf "-" }'
}

# The figures this run was asked for; those that are not figures make it exit 1, except
# edged's not built yet.
NOT_RESULTS=()
NOT_MEASURED=()
want=()
[ "$ONLY" = swarm ] || want+=(edged_apply_3 edged_kill_3 edged_crash_replaced edged_crash_restarts edged_sched edged_mem_rss_3)
[ "$ONLY" = edged ] || want+=(swarm_apply_3 swarm_kill_3 swarm_down_3 swarm_mem_rss_3)
for n in "${NS[@]}"; do
  [ "$ONLY" = swarm ] || want+=("edged_scale_$n")
  [ "$ONLY" = edged ] || want+=("swarm_scale_$n")
done
for k in "${want[@]}"; do
  [ "$(fig "$k")" = - ] || continue
  if [ "${R[$k]:-}" = "$EDGED_TODO" ]; then
    NOT_MEASURED+=("$k")
  else
    NOT_RESULTS+=("$k: ${R[$k]:-did not run}")
  fi
done

row() {  # METRIC EDGED SWARM GOAL NOTES
  printf '%-22s %9s %9s %7s  %-22s %s\n' "$1" "$(fig "$2")" "$(fig "$3")" "$(ratio "${R[$2]:-}" "${R[$3]:-}")" "$4" "$5"
}
echo
printf '%-22s %9s %9s %7s  %-22s %s\n' metric edged swarm ratio goal notes
row apply_3_s edged_apply_3 swarm_apply_3 "<= 0.5x swarm" \
  "3 replicas serving on 3 nodes, median of $APPLY_RUNS; swarm: each ${R[swarm_apply_samples_3]:--}, CLI ${R[swarm_apply_cli_3]:--}, own running ${R[swarm_apply_running_3]:--}, placement ${R[swarm_apply_place_3]:--}"
row node_kill_3_s edged_kill_3 swarm_kill_3 "<= 6 s, <= 0.3x" \
  "worker n3 killed whole; swarm: marked down ${R[swarm_down_3]:--}s, own running ${R[swarm_kill_running_3]:--}s, all 3 services ${R[swarm_kill_all_3]:--}s, s1 ${R[swarm_kill_before_3]:--} -> ${R[swarm_kill_after_3]:--}"
row crash_replacements edged_crash_replaced - "0" "edged only: kill -9 of edged / of the supernode"
row crash_restarts edged_crash_restarts - "0" "edged only"
for n in "${NS[@]}"; do
  row "scale_$((n * 5))_on_${n}_s" "edged_scale_$n" "swarm_scale_$n" "<= 3 s" \
    "$((n * 5)) replicas, images present, bound 120 s; swarm: first/median serving ${R[swarm_scale_first_$n]:--}, CLI ${R[swarm_scale_cli_$n]:--}s, own running ${R[swarm_scale_running_$n]:--}s, placement ${R[swarm_scale_place_$n]:--}"
done
row scheduler_per_s edged_sched - ">= 10000" "edged only: the scheduler alone, 100 nodes, one core"
row mem_node_rss_mib edged_mem_rss_3 swarm_mem_rss_3 "" "idle ${IDLE}s, 3 services x 3 replicas, mean of 3 nodes; swarm: dockerd+containerd+shims, ${R[swarm_mem_notes]:--}"
row mem_node_pss_mib edged_mem_pss_3 swarm_mem_pss_3 "" "the same, PSS (pages shared between the nodes' daemons split)"
echo
echo "phases: $(printf '%s; ' "${PHASES[@]}")"
echo "watcher_cpu_s: $WATCH_CPU (cluster_poll.py serving); whole run $(secs "$RUN_T0" "$(now)")s; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "ratio apply_3 $(ratio "${R[edged_apply_3]:-}" "${R[swarm_apply_3]:-}")"
echo "ratio node_kill_3 $(ratio "${R[edged_kill_3]:-}" "${R[swarm_kill_3]:-}")"
for n in "${NS[@]}"; do
  echo "ratio scale_$((n * 5))_on_$n $(ratio "${R[edged_scale_$n]:-}" "${R[swarm_scale_$n]:-}")"
done
echo "ratio mem_node_rss $(ratio "${R[edged_mem_rss_3]:-}" "${R[swarm_mem_rss_3]:-}")"
echo "ratio mem_node_pss $(ratio "${R[edged_mem_pss_3]:-}" "${R[swarm_mem_pss_3]:-}")"
if ((${#NOT_MEASURED[@]} > 0)); then
  echo
  echo "cluster_bench: ${#NOT_MEASURED[@]} edged figure(s) not measured: cluster scope (issue 15) not built yet: ${NOT_MEASURED[*]}"
fi
if ((${#NOT_RESULTS[@]} > 0)); then
  echo
  echo "cluster_bench: ${#NOT_RESULTS[@]} requested figure(s) are not results:"
  printf '  %s\n' "${NOT_RESULTS[@]}"
  exit 1
fi
