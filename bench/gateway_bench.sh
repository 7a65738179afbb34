#!/usr/bin/env bash
# Gateway benchmark (issue 6 section 8): wrk against one small HTTP backend, in the same
# run and on the same machine, directly, through our gateway (edge-gateway) and through
# Debian's nginx as a reverse proxy with the same number of workers.
#
#   bench/gateway_bench.sh [--quick] [--conns 16,64,256] [--reps 3] [--duration S]
#                          [--workers W] [--big-size BYTES] [--gateway-cmd TEMPLATE]
#                          [--placeholder] [--no-pin] [--cpus-load LIST] [--cpus-proxy LIST]
#                          [--wrk-threads N] [--nice N] [--peer] [--cold-start] [--only-extra]
#                          [--aa] [--keep]
#   --quick        c=64 only, 3 repetitions of 2 s: under a minute
#   --gateway-cmd  how to start our gateway; %P is its port, %W the workers, %B the
#                  backend's port. Default:
#                  $EDGE_BUILD_DIR/bin/edge-gateway --listen 127.0.0.1:%P --workers %W
#                  --route /=127.0.0.1:%B --log-level warn
#   --placeholder  when edge-gateway is not built, a second nginx proxy stands in for it
#                  (to work on this script; its rows say "placeholder", not a result)
#   --peer         (root) the peer route: two edged nodes in network namespaces on a
#                  bridge (tests/integration/lib/netns_cluster.sh, 198.18.0.0/15), node
#                  A's gateway (127.0.0.1:8083, route /peer) forwarding to a service on
#                  node B over mTLS, against calling node B's service directly from A's
#                  namespace; wrk -c16 from A's namespace. The service's instance
#                  listens nowhere; an nginx `return 200` like the main backend answers
#                  on its port in B's namespace. cpu_us/req: both edged.
#   --cold-start   (root) an on-demand service (lifecycle: {mode: on-demand, idleTimeout:
#                  2s}): curl's time for the first call, which starts it, against warm
#                  calls; each repetition waits until the idle timeout stopped it. Light
#                  runtime: edged in a namespace. Docker: edged in this namespace (Docker
#                  containers use the host's network) on a free loopback port, only when
#                  a Docker Engine answers and holds no managed container of someone
#                  else (edged on Docker removes the managed containers it does not want)
#   --only-extra   skip the direct/gateway/nginx rows (with --peer or --cold-start)
#   --aa           adds "nginx2", a second nginx proxy exactly like the first, measured
#                  like the others: its ratios to nginx (aa_*) are this machine's noise
#                  (on the shared 2-core machine: 0.87-1.13 for req/s and p99, up to
#                  0.75-1.3 on 1 MiB bodies in a fixed row order)
#   --nice N       niceness of this run's session (default -20; see below)
#   (EDGE_BUILD_DIR=build by default; needs wrk, nginx-light, curl: scripts/install-deps.sh)
#
# The backend is one nginx (1 worker, its own temporary prefix, never the system config)
# answering `return 200` with a 23-byte body on /, and a static file of --big-size bytes
# (1 MiB) on /big with sendfile: the same backend for every row.
# Proxies: our gateway with --workers W; nginx with worker_processes W, an upstream with
# `keepalive 64`, proxy_http_version 1.1, Connection "", access_log off, no temp files
# (proxy_max_temp_file_size 0: large bodies stream through its buffers), `reuseport`
# (a listening socket per worker, as edge-gateway has).
# Pinning (2 cores shared with builds): wrk (1 thread) and the backend on --cpus-load
# (default CPU 0), the proxy under test alone on --cpus-proxy (default every other CPU),
# so that the proxy is the bottleneck and both proxies get the same CPUs. --no-pin turns
# it off. The run gets a session of its own whose autogroup has niceness --nice (-20):
# with autogroup scheduling, CPU time is shared between sessions first, and the builds
# of other sessions took most of the proxy's CPU even from a nice -10 process (10k req/s
# through nginx instead of 40k). Rows are interleaved (direct, gateway, nginx, then the
# next repetition, its order rotated by one) so that load from other processes on the
# machine hits every row alike; each figure is the median of the repetitions, each
# metric taken separately. cpu_us/req is the proxy's own
# CPU time (user+system, every process and thread of it) per request: it moves less with
# the machine's load than requests/s. A row with non-2xx answers or socket errors says so
# in its `errs` column: such a row is not a result.
# Prints the table and `ratio <what> <value>` lines: gateway/nginx for requests/s (above
# 1: ours is faster) and p99 (below 1: ours is better). A row that is missing (a
# repetition did not run) or had errors shows "-" instead of its figures, its ratios are
# "-", and the run exits 1 listing such rows. --placeholder rows are not results either:
# no gateway_vs_* ratio is printed for them and the run exits 1.
# Every wait is bounded; everything started is stopped on exit.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EDGE_BUILD_DIR:-$ROOT/build}
CONNS=16,64,256
REPS=3
DURATION=5
WORKERS=1
BIG_SIZE=1048576
BIG_CONNS=16
# --log-level warn: nginx's error_log is at warn too, and neither logs access lines.
GATEWAY_CMD="$BUILD/bin/edge-gateway --listen 127.0.0.1:%P --workers %W --route /=127.0.0.1:%B --log-level warn"
PLACEHOLDER=0
PIN=1
NICE=-20
CPUS_LOAD=
CPUS_PROXY=
WRK_THREADS=1
DO_CORE=1
DO_PEER=0
DO_COLD=0
KEEP=0
AA=0

usage_error() {
  echo "gateway_bench: $*" >&2
  echo "gateway_bench: see bench/gateway_bench.sh --help" >&2
  exit 2
}
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "$1 needs a value"; fi; }

ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --quick) CONNS=64; REPS=3; DURATION=2; shift ;;
    --conns) need_value "$@"; CONNS=$2; shift 2 ;;
    --reps) need_value "$@"; REPS=$2; shift 2 ;;
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --workers) need_value "$@"; WORKERS=$2; shift 2 ;;
    --big-size) need_value "$@"; BIG_SIZE=$2; shift 2 ;;
    --gateway-cmd) need_value "$@"; GATEWAY_CMD=$2; shift 2 ;;
    --placeholder) PLACEHOLDER=1; shift ;;
    --no-pin) PIN=0; shift ;;
    --nice) need_value "$@"; NICE=$2; shift 2 ;;
    --cpus-load) need_value "$@"; CPUS_LOAD=$2; shift 2 ;;
    --cpus-proxy) need_value "$@"; CPUS_PROXY=$2; shift 2 ;;
    --wrk-threads) need_value "$@"; WRK_THREADS=$2; shift 2 ;;
    --peer) DO_PEER=1; shift ;;
    --cold-start) DO_COLD=1; shift ;;
    --only-extra) DO_CORE=0; shift ;;
    --keep) KEEP=1; shift ;;
    --aa) AA=1; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument '$1' (allowed: --quick --conns N,N,... --reps N --duration S --workers W --big-size BYTES --gateway-cmd TEMPLATE --placeholder --no-pin --nice N --cpus-load LIST --cpus-proxy LIST --wrk-threads N --peer --cold-start --only-extra --aa --keep)" ;;
  esac
done

is_uint() { [[ $1 =~ ^(0|[1-9][0-9]{0,9})$ ]]; }
in_range() { is_uint "$1" && (($1 >= $2 && $1 <= $3)); } # VALUE MIN MAX
valid_nice() { [[ $1 =~ ^-?(0|[1-9][0-9]?)$ ]] && (($1 >= -20 && $1 <= 19)); }
IFS=, read -r -a CONN_LIST <<<"$CONNS"
((${#CONN_LIST[@]} > 0)) || usage_error "--conns: empty list (allowed: connection counts 1..10000, comma-separated)"
for c in "${CONN_LIST[@]}"; do
  in_range "$c" 1 10000 || usage_error "--conns: '$c' is not a connection count in 1..10000"
done
in_range "$REPS" 1 20 || usage_error "--reps: '$REPS' is not a count in 1..20"
in_range "$DURATION" 1 120 || usage_error "--duration: '$DURATION' is not a number of seconds in 1..120"
in_range "$WORKERS" 1 64 || usage_error "--workers: '$WORKERS' is not a worker count in 1..64"
in_range "$BIG_SIZE" 1 1073741824 || usage_error "--big-size: '$BIG_SIZE' is not a size in bytes in 1..1073741824"
valid_nice "$NICE" || usage_error "--nice: '$NICE' is not a niceness in -20..19"
if ((NICE < 0)) && [ "$(id -u)" -ne 0 ]; then
  echo "gateway_bench: not root: --nice $NICE not allowed, running at niceness 0" >&2
  NICE=0
fi
in_range "$WRK_THREADS" 1 64 || usage_error "--wrk-threads: '$WRK_THREADS' is not a thread count in 1..64"
for c in "${CONN_LIST[@]}" "$BIG_CONNS"; do
  ((c >= WRK_THREADS)) || usage_error "--conns: $c connections is fewer than --wrk-threads $WRK_THREADS (wrk needs one per thread)"
done
for t in %P %B; do
  [[ $GATEWAY_CMD == *"$t"* ]] || usage_error "--gateway-cmd: '$GATEWAY_CMD' has no $t (allowed placeholders: %P port, %W workers, %B backend port)"
done
NCPU=$(nproc)
valid_cpus() { [[ $1 =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]]; }
for v in "$CPUS_LOAD" "$CPUS_PROXY"; do
  [ -z "$v" ] || valid_cpus "$v" || usage_error "--cpus-load/--cpus-proxy: '$v' is not a CPU list (like 0 or 1-3 or 0,2)"
done
if ((PIN)); then
  if ((NCPU < 2)); then
    echo "gateway_bench: 1 CPU: nothing to pin, running unpinned" >&2
    PIN=0
  else
    CPUS_LOAD=${CPUS_LOAD:-0}
    if ((NCPU == 2)); then CPUS_PROXY=${CPUS_PROXY:-1}; else CPUS_PROXY=${CPUS_PROXY:-1-$((NCPU - 1))}; fi
  fi
fi
# Autogroups (kernel.sched_autogroup_enabled): a process's niceness counts only inside
# its session, so the bench runs in a session of its own whose autogroup gets --nice.
if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ] && ((NICE != 0)) &&
  [ -z "${GATEWAY_BENCH_SESSION:-}" ] && command -v setsid >/dev/null; then
  GATEWAY_BENCH_SESSION=1 setsid -w "$0" "${ORIG_ARGS[@]}" &
  session_pid=$!
  trap 'kill -TERM "$session_pid" 2>/dev/null' INT TERM
  wait "$session_pid"
  rc=$?
  # A signal interrupted the first wait: the session is cleaning up.
  kill -0 "$session_pid" 2>/dev/null && { wait "$session_pid"; rc=$?; }
  exit "$rc"
fi
if [ -n "${GATEWAY_BENCH_SESSION:-}" ] && ! echo "$NICE" >/proc/self/autogroup 2>/dev/null; then
  echo "gateway_bench: could not set this session's autogroup niceness to $NICE: other sessions' processes keep their CPU share" >&2
fi
for b in wrk nginx curl taskset python3; do
  command -v "$b" >/dev/null || { echo "gateway_bench: '$b' not installed (scripts/install-deps.sh)" >&2; exit 2; }
done

log() { echo "[gateway-bench $(date +%T)] $*" >&2; }
now_ns() { date +%s%N; }

# Leftovers of a run that was killed (kill -9, no trap): every process of ours runs with
# its work dir as cwd; a work dir whose owner is dead goes, with its processes.
sweep_leftovers() {
  local d owner p
  for d in /tmp/gateway-bench.*; do
    [ -d "$d" ] || continue
    owner=$(cat "$d/owner" 2>/dev/null || echo 0)
    [ "$owner" != 0 ] && kill -0 "$owner" 2>/dev/null && continue
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/cwd" 2>/dev/null)" = "$d" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    echo "gateway_bench: removed the leftovers of a killed run: $d" >&2
    rm -rf "$d"
  done
}
sweep_leftovers
WORK=$(mktemp -d /tmp/gateway-bench.XXXXXX) || exit 2
echo $$ >"$WORK/owner"
cd "$WORK" || exit 2
# nginx's workers run as nobody: they read the static file and the temp paths.
chmod 755 "$WORK"
declare -A RUNNING=() # pid -> name
cleanup() {
  local pid tries
  for pid in "${!RUNNING[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${!RUNNING[@]}"; do
    tries=0
    while kill -0 "$pid" 2>/dev/null && ((tries < 30)); do
      sleep 0.1
      tries=$((tries + 1))
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  RUNNING=()
  if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
  if ((KEEP)); then
    log "--keep: logs and configs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || true

# A port nobody listens on now (the kernel's pick; tiny race with other processes).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pinned() {  # CPUS CMD...: CMD on CPUS (or unpinned), at niceness NICE
  local cpus=$1
  shift
  if ((PIN)); then nice -n "$NICE" taskset -c "$cpus" "$@"; else nice -n "$NICE" "$@"; fi
}

start_bg() {  # NAME CPUS CMD...: sets BG_PID
  local name=$1 cpus=$2
  shift 2
  # Not through pinned(): BG_PID must be the program itself (nice and taskset exec it), not a
  # subshell, for cpu_ticks and stop_bg.
  if ((PIN)); then
    nice -n "$NICE" taskset -c "$cpus" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  else
    nice -n "$NICE" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  fi
  BG_PID=$!
  RUNNING[$BG_PID]=$name
}

stop_bg() {  # PID
  local pid=$1 tries=0
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && ((tries < 50)); do
    sleep 0.1
    tries=$((tries + 1))
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "RUNNING[$pid]"
}

# IN_NS (array): what start_nginx and wait_http run under (nsenter into a namespace).
IN_NS=()
wait_http() {  # PID URL SECONDS: 0 once URL answers 200, 1 when PID died or time is up
  local pid=$1 url=$2 deadline=$(($(now_ns) + $3 * 1000000000))
  until "${IN_NS[@]}" curl -fsS -o /dev/null -m 1 "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || return 1
    (($(now_ns) > deadline)) && return 1
    sleep 0.1
  done
}

# ---------------------------------------------------------------- processes

nginx_common() {  # NAME WORKERS: the top of a config of ours, everything under $WORK/NAME
  local d=$WORK/$1
  mkdir -p "$d"
  cat <<EOF
worker_processes $2;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; multi_accept on; }
EOF
}

nginx_http_common() {  # NAME
  local d=$WORK/$1
  cat <<EOF
  access_log off;
  client_body_temp_path $d/client_body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
EOF
}

start_nginx() {  # NAME CPUS PORT: nginx with $WORK/NAME.conf; sets BG_PID
  local name=$1 cpus=$2 port=$3
  if ! nginx -t -q -e "$WORK/$name/error.log" -p "$WORK/$name" -c "$WORK/$name.conf" 2>"$WORK/$name.check"; then
    log "$name: nginx refuses its config: $(cat "$WORK/$name.check")"
    return 1
  fi
  start_bg "$name" "$cpus" "${IN_NS[@]}" nginx -e "$WORK/$name/error.log" -p "$WORK/$name" -c "$WORK/$name.conf"
  if ! wait_http "$BG_PID" "http://127.0.0.1:$port/" 10; then
    log "$name: not answering on 127.0.0.1:$port after 10 s: $(tail -3 "$WORK/$name.log" "$WORK/$name/error.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
}

start_backend() {  # PORT: sets BACKEND_PID
  local port=$1
  mkdir -p "$WORK/www"
  head -c "$BIG_SIZE" /dev/urandom >"$WORK/www/big"
  chmod 644 "$WORK/www/big"
  {
    nginx_common backend 1
    echo "http {"
    nginx_http_common backend
    cat <<EOF
  sendfile on;
  tcp_nopush on;
  server {
    listen 127.0.0.1:$port backlog=4096;
    default_type text/plain;
    location = /big { root $WORK/www; }
    location / { return 200 "hello from the backend\n"; }
  }
}
EOF
  } >"$WORK/backend.conf"
  start_nginx backend "${CPUS_LOAD:-0}" "$port" || return 1
  BACKEND_PID=$BG_PID
}

start_nginx_proxy() {  # NAME PORT BACKEND_PORT: sets BG_PID
  local name=$1 port=$2 backend=$3
  {
    nginx_common "$name" "$WORKERS"
    echo "http {"
    nginx_http_common "$name"
    cat <<EOF
  upstream backend {
    server 127.0.0.1:$backend;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$port backlog=4096 reuseport;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_max_temp_file_size 0;
    }
  }
}
EOF
  } >"$WORK/$name.conf"
  start_nginx "$name" "${CPUS_PROXY:-0}" "$port"
}

start_gateway() {  # PORT BACKEND_PORT: sets BG_PID; GATEWAY_NOTE says what ran
  local port=$1 backend=$2 cmd bin
  cmd=${GATEWAY_CMD//%P/$port}
  cmd=${cmd//%W/$WORKERS}
  cmd=${cmd//%B/$backend}
  read -r -a argv <<<"$cmd"
  bin=${argv[0]}
  if ! [ -x "$bin" ] && ! command -v "$bin" >/dev/null; then
    if ((PLACEHOLDER)); then
      log "gateway: $bin not built; --placeholder: a second nginx proxy stands in for it"
      GATEWAY_NOTE="PLACEHOLDER (nginx): not our gateway"
      start_nginx_proxy placeholder "$port" "$backend"
      return
    fi
    log "gateway: $bin not built (ninja -C $BUILD edge-gateway, or --gateway-cmd; --placeholder to try the script without it): its rows stay empty"
    GATEWAY_NOTE="not built: $bin"
    return 1
  fi
  GATEWAY_NOTE="$cmd"
  log "gateway: $cmd"
  start_bg gateway "${CPUS_PROXY:-0}" "${argv[@]}"
  if ! wait_http "$BG_PID" "http://127.0.0.1:$port/" 10; then
    log "gateway: not answering 200 on 127.0.0.1:$port/ after 10 s: $(tail -5 "$WORK/gateway.log" | tr '\n' ' ')"
    GATEWAY_NOTE="did not start: $(tail -1 "$WORK/gateway.log")"
    return 1
  fi
}

# CPU ticks (user+system) of PID, its threads and its children (nginx's workers).
cpu_ticks() {
  local pid=$1 p sum=0 t
  for p in "$pid" $(pgrep -P "$pid"); do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || continue
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- wrk

# wrk_run URL CONNS SECONDS PROXY_PIDS(or -) -> "rps p50_ms p99_ms mib_s cpu_us_per_req errs"
# PROXY_PIDS: "pid [pid...]" whose CPU time counts as the proxy's. WRK_PREFIX (array):
# what wrk runs under (nsenter into a node's namespace).
WRK_PREFIX=()
wrk_run() {
  local url=$1 conns=$2 secs=$3 ppid=$4 out t0=0 t1=0 p
  if [ "$ppid" != - ]; then for p in $ppid; do t0=$((t0 + $(cpu_ticks "$p"))); done; fi
  out=$(pinned "${CPUS_LOAD:-0}" "${WRK_PREFIX[@]}" timeout $((secs + 20)) wrk -t"$WRK_THREADS" \
    -c"$conns" -d"${secs}s" --latency --timeout 5s "$url" 2>&1)
  local rc=$?
  if [ "$ppid" != - ]; then for p in $ppid; do t1=$((t1 + $(cpu_ticks "$p"))); done; fi
  echo "$out" >>"$WORK/wrk.log"
  if ((rc != 0)); then
    log "wrk $url c=$conns failed (exit $rc): $(echo "$out" | tail -2 | tr '\n' ' ')"
    echo "- - - - - wrk-failed"
    return
  fi
  echo "$out" | awk -v ticks=$((t1 - t0)) -v tck="$CLK_TCK" -v proxied="$([ "$ppid" = - ] && echo 0 || echo 1)" '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    function mib(v) {
      if (v ~ /GB$/) return substr(v, 1, length(v) - 2) * 1024
      if (v ~ /MB$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /KB$/) return substr(v, 1, length(v) - 2) / 1024
      if (v ~ /B$/) return substr(v, 1, length(v) - 1) / 1048576
      return v + 0
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    $1 == "Transfer/sec:" { mb = mib($2) }
    / requests in / { n = $1 }
    /Non-2xx or 3xx responses:/ { errs += $NF }
    /Socket errors:/ { gsub(/,/, ""); errs += $4 + $6 + $8 + $10 }
    END {
      # ticks < 0: the proxy died during the run and took its CPU time with it
      cpu = (proxied && n > 0 && ticks >= 0) ? sprintf("%.1f", ticks * 1e6 / tck / n) : "-"
      if (rps == "") { print "- - - - - no-output"; exit }
      printf "%.0f %.3f %.3f %.1f %s %d\n", rps, p50, p99, mb, cpu, errs
    }'
}

# ---------------------------------------------------------------- core rows

declare -A RES=() # "<target> <conns|big> <rep>" -> wrk_run's line
declare -A NOTE=()
TARGETS=(direct gateway nginx)
if ((AA)); then TARGETS+=(nginx2); fi

median() {  # values... ("-" ignored) -> median, or -; as many decimals as the values have
  printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '
    { v[NR] = $1; d = index($1, ".") ? length($1) - index($1, ".") : 0; if (d > dec) dec = d }
    END {
      if (NR == 0) { print "-"; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else printf "%.*f\n", dec, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The targets in the order of repetition REP, rotated by one each time: no row always
# runs right after the same other one (1 MiB rows of two identical nginx proxies differed
# by 27% in a fixed order).
rotated() {  # REP
  local n=${#TARGETS[@]} i k
  for ((i = 0; i < n; i++)); do
    k=$(((i + $1 - 1) % n))
    echo "${TARGETS[k]}"
  done
}

core() {
  local bport gport nport gpid=- npid=- url rep c t pid
  bport=$(free_port)
  start_backend "$bport" || return 1
  log "backend: nginx, 1 worker on 127.0.0.1:$bport (CPUs ${CPUS_LOAD:-any}); body: 23 bytes on /, $BIG_SIZE bytes on /big"
  gport=$(free_port)
  if start_gateway "$gport" "$bport"; then gpid=$BG_PID; fi
  nport=$(free_port)
  if start_nginx_proxy nginx "$nport" "$bport"; then npid=$BG_PID; else log "nginx proxy did not start"; fi
  NOTE[direct]="wrk -> backend"
  NOTE[gateway]="$GATEWAY_NOTE"
  NOTE[nginx]="nginx $(nginx -v 2>&1 | sed 's|.*/||'), worker_processes $WORKERS, upstream keepalive 64"
  declare -gA PORT=([direct]=$bport [gateway]=$gport [nginx]=$nport)
  declare -gA PPID_OF=([direct]=- [gateway]=$gpid [nginx]=$npid)
  if ((AA)); then
    PORT[nginx2]=$(free_port)
    PPID_OF[nginx2]=-
    if start_nginx_proxy nginx2 "${PORT[nginx2]}" "$bport"; then PPID_OF[nginx2]=$BG_PID; fi
    NOTE[nginx2]="a second nginx exactly like the first (--aa): nginx2/nginx is the noise"
  fi
  if ((PIN)); then
    log "pinning: wrk ($WRK_THREADS thread) and the backend on CPU $CPUS_LOAD, the proxy under test on CPU $CPUS_PROXY"
  fi
  live() {  # TARGET: has a process to measure
    [ "$1" = direct ] || [ "${PPID_OF[$1]}" != - ]
  }
  # Warm-up: connections, caches, the CPU frequency.
  for t in "${TARGETS[@]}"; do
    live "$t" && wrk_run "http://127.0.0.1:${PORT[$t]}/" 64 1 - >/dev/null
  done
  for rep in $(seq "$REPS"); do
    for c in "${CONN_LIST[@]}"; do
      for t in $(rotated "$rep"); do
        live "$t" || continue
        RES["$t $c $rep"]=$(wrk_run "http://127.0.0.1:${PORT[$t]}/" "$c" "$DURATION" "${PPID_OF[$t]}")
        log "rep $rep c=$c $t: ${RES["$t $c $rep"]}"
      done
    done
  done
  for rep in $(seq "$REPS"); do
    for t in $(rotated "$rep"); do
      live "$t" || continue
      RES["$t big $rep"]=$(wrk_run "http://127.0.0.1:${PORT[$t]}/big" "$BIG_CONNS" "$DURATION" "${PPID_OF[$t]}")
      log "rep $rep big c=$BIG_CONNS $t: ${RES["$t big $rep"]}"
    done
  done
  # A proxy that died under load leaves rows of errors: say which and why.
  for t in gateway nginx nginx2; do
    pid=${PPID_OF[$t]:--}
    if [ "$pid" != - ] && ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      NOTE[$t]="${NOTE[$t]}; EXITED during the run (status $?): $(tail -n 3 "$WORK/$t.log" 2>/dev/null | tr '\n' ' ' | head -c 300)"
      log "$t: ${NOTE[$t]}"
    fi
  done
  for pid in "$gpid" "$npid" "${PPID_OF[nginx2]:--}" "$BACKEND_PID"; do
    [ "$pid" = - ] || stop_bg "$pid"
  done
}

# agg TARGET KEY FIELD(1..6) -> median over the repetitions (errs: the sum)
agg() {
  local t=$1 k=$2 f=$3 rep vals=() n
  n=$REPS
  [ "$k" = big ] && n=$REPS
  for rep in $(seq "$n"); do
    vals+=("$(echo "${RES["$t $k $rep"]:-- - - - - -}" | cut -d' ' -f"$f")")
  done
  if ((f == 6)); then
    printf '%s\n' "${vals[@]}" | awk '/^[0-9]+$/ { s += $1; n++ } !/^[0-9]+$/ && $1 != "-" { bad = $1 }
      END { if (bad != "") print bad; else if (n) print s; else print "-" }'
  else
    median "${vals[@]}"
  fi
}

# Requested rows that are not results (missing or with errors): the run exits 1.
NOT_RESULTS=()

# row_problem ARRAY KEY: why row KEY (its runs ARRAY["KEY <rep>"], wrk_run lines, for
# rep 1..REPS) is not a result; nothing when every repetition ran without an error.
row_problem() {
  local -n rows=$1
  local rep v errs why=
  for rep in $(seq "$REPS"); do
    v=${rows["$2 $rep"]:-}
    errs=$(cut -d' ' -f6 <<<"$v")
    if [ -z "$v" ]; then
      why+="rep $rep did not run; "
    elif ! [[ $errs =~ ^[0-9]+$ ]]; then
      why+="rep $rep: $errs; "
    elif ((errs > 0)); then
      why+="rep $rep: $errs errors; "
    elif [ "$(cut -d' ' -f1 <<<"$v")" = - ]; then
      why+="rep $rep: no figures; "
    fi
  done
  printf '%s' "${why%; }"
}

# figures ARRAY KEY AGG_FN FIELDS...: the row's figures, "-" for each when it is not a
# result (then also noted in NOT_RESULTS under LABEL, from the caller's $label)
figures() {
  local arr=$1 key=$2 fn=$3 f why out=()
  shift 3
  why=$(row_problem "$arr" "$key")
  for f in "$@"; do
    if [ -n "$why" ] && ((f != 6)); then out+=(-); else out+=("$("$fn" $key "$f")"); fi
  done
  [ -z "$why" ] || NOT_RESULTS+=("$label: $why")
  FIG=("${out[@]}")
}

placeholder_run() { [[ ${NOTE[gateway]:-} == PLACEHOLDER* ]]; }

ratio() {  # A B -> A/B, or - when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.3f", a / b; else printf "-" }'
}

size_label() {  # BYTES -> 1MiB, 64KiB, 100B
  if (($1 % 1048576 == 0)); then echo "$(($1 / 1048576))MiB"
  elif (($1 % 1024 == 0)); then echo "$(($1 / 1024))KiB"
  else echo "$1B"; fi
}

# cratio WHAT T1 T2 K FIELD: a ratio line, "-" when a row had errors (a proxy answering
# errors fast is not fast)
cratio() {
  local v=-
  # A placeholder's figures are nginx's: no ratio may look like the gateway's.
  if [ "$2" = gateway ] && placeholder_run; then return; fi
  if [ -z "$(row_problem RES "$2 $4")" ] && [ -z "$(row_problem RES "$3 $4")" ]; then
    v=$(ratio "$(agg "$2" "$4" "$5")" "$(agg "$3" "$4" "$5")")
  fi
  echo "ratio $1 $v"
}

print_core() {
  local c t k label
  echo
  echo "gateway_bench: median of $REPS x ${DURATION}s per row, wrk -t$WRK_THREADS, proxies with $WORKERS worker(s)$( ((PIN)) && echo ", wrk+backend on CPU $CPUS_LOAD, proxy on CPU $CPUS_PROXY")"
  printf '%-7s %-8s %5s %10s %9s %9s %9s %11s %6s\n' row target conns req/s p50_ms p99_ms MiB/s cpu_us/req errs
  for k in "${CONN_LIST[@]}" big; do
    for t in "${TARGETS[@]}"; do
      if [ "$k" = big ]; then label=$(size_label "$BIG_SIZE"); c=$BIG_CONNS; else label=small; c=$k; fi
      label="$label $t c=$c" figures RES "$t $k" agg 1 2 3 4 5 6
      printf '%-7s %-8s %5s %10s %9s %9s %9s %11s %6s\n' "$label" "$t" "$c" "${FIG[@]}"
    done
  done
  for t in "${TARGETS[@]}"; do echo "  $t: ${NOTE[$t]}"; done
  if placeholder_run; then
    NOT_RESULTS+=("the gateway rows: --placeholder, nginx stood in for the gateway")
    echo "  (--placeholder: no gateway_vs_* ratio; the gateway rows are nginx's)"
  fi
  echo
  for k in "${CONN_LIST[@]}"; do
    cratio "gateway_vs_nginx_rps_c$k" gateway nginx "$k" 1
    cratio "gateway_vs_nginx_p99_c$k" gateway nginx "$k" 3
    cratio "gateway_vs_nginx_cpu_per_req_c$k" gateway nginx "$k" 5
  done
  cratio gateway_vs_nginx_mibps_big gateway nginx big 4
  cratio gateway_vs_nginx_p99_big gateway nginx big 3
  if ((AA)); then
    for k in "${CONN_LIST[@]}"; do
      cratio "aa_nginx2_vs_nginx_rps_c$k" nginx2 nginx "$k" 1
      cratio "aa_nginx2_vs_nginx_p99_c$k" nginx2 nginx "$k" 3
    done
    cratio aa_nginx2_vs_nginx_mibps_big nginx2 nginx big 4
  fi
  for k in "${CONN_LIST[@]}"; do
    cratio "gateway_vs_direct_rps_c$k" gateway direct "$k" 1
    cratio "nginx_vs_direct_rps_c$k" nginx direct "$k" 1
  done
}

# ---------------------------------------------------------------- --peer, --cold-start

# Both need edged nodes with their gateway (issue 6: HTTP on the node's port 8083, routes
# /<base path>, node-to-node mTLS), set up the way tests/integration/gateway_e2e.sh does:
# listen 0.0.0.0:8083, gateway_socket, one account_key_file for the nodes.
EXTRA_READY=0
declare -A XR=()   # results of the extra rows
declare -A XNOTE=()
EDGED_ROOT_PID=
EDGED_ROOT_DIR=
HELLO_WAS_IN_DOCKER=1

extra_cleanup() {
  if [ -n "$EDGED_ROOT_PID" ]; then docker_edged_stop; fi
  if declare -F nc_cleanup >/dev/null; then nc_cleanup; fi
}

extra_init() {  # once: the namespaces library, the account key, the hello image
  ((EXTRA_READY)) && return 0
  local b
  if [ "$(id -u)" -ne 0 ]; then
    EXTRA_WHY="needs root (network namespaces, the light runtime)"
    return 1
  fi
  for b in edged edgectl edge-shim; do
    [ -x "$BUILD/bin/$b" ] || { EXTRA_WHY="$BUILD/bin/$b not built (ninja edged edgectl edge-shim edge_test_images)"; return 1; }
  done
  [ -f "$BUILD/images/hello.tar" ] || { EXTRA_WHY="$BUILD/images/hello.tar not built (ninja edge_test_images)"; return 1; }
  command -v openssl >/dev/null || { EXTRA_WHY="openssl missing"; return 1; }
  export NC_BIN=$BUILD/bin
  # shellcheck source=../tests/integration/lib/netns_cluster.sh
  . "$ROOT/tests/integration/lib/netns_cluster.sh"
  ((KEEP)) && export NC_KEEP=1
  # Not gateway-bench.*: sweep_leftovers would take it for a work dir without owner.
  nc_init gateway-bench-nodes || { EXTRA_WHY="nc_init failed"; return 1; }
  ACCOUNT_KEY=$NC_DIR/account.key
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ACCOUNT_KEY" 2>/dev/null) ||
    { EXTRA_WHY="openssl genpkey failed"; return 1; }
  cp "$BUILD/images/hello.tar" "$NC_DIR/hello.tar"
  EXTRA_READY=1
}

# The service: busybox httpd (the hello image) serving BASE/who ("node=NODE", 8 bytes).
# busybox httpd closes each connection after its answer: every row pays a connect.
svc_doc() {  # NAME NODE BASE [extra spec lines...]
  cat <<EOF
apiVersion: edge/v1
kind: Service
metadata: {name: $1}
spec:
  image: ./hello.tar
  replicas: 1
  ports: [{name: http}]
  resources: {memory: 256Mi, pids: 512}
  command: [sh, -c, "mkdir -p /tmp/w$3 && echo node=$2 >/tmp/w$3/who && exec httpd -f -p \$PORT -h /tmp/w"]
  healthCheck: {tcp: {port: http}, interval: 200ms, timeout: 200ms, retries: 10}
  route: {basePath: $3}
EOF
  printf '%s\n' "${@:4}"
}

node_instances() {  # I SERVICE -> "state ready port" per instance (edgectl of node I)
  nc_edgectl "$1" get instances -o json 2>/dev/null | instances_of "$2"
}
instances_of() {  # SERVICE, JSON on stdin
  python3 -c '
import json, sys
for i in json.load(sys.stdin).get("instances", []):
    if i.get("service") == sys.argv[1]:
        print(i.get("state"), i.get("ready"), (i.get("ports") or {}).get("http", "-"))' "$1"
}

wait_until() {  # SECONDS CMD...: polls every 0.2 s
  local deadline=$(($(now_ns) + $1 * 1000000000))
  shift
  until "$@"; do
    (($(now_ns) < deadline)) || return 1
    sleep 0.2
  done
}

ready_port() {  # I SERVICE: sets RP to the port of a running, ready instance
  RP=$(node_instances "$1" "$2" | awk '$1 == "running" && $2 == "True" { print $3; exit }')
  [ -n "$RP" ] && [ "$RP" != - ]
}

answers_in() {  # I URL WANT: a GET from node I's namespace answers 200 with body WANT
  local body
  body=$(nc_exec "$1" curl -fsS -m 5 "$2" 2>/dev/null) && [ "$body" = "$3" ]
}

# An edged from before the gateway refuses its settings: it runs without them (and
# NO_GATEWAY says so), so that the direct rows are still measured.
NO_GATEWAY=
node_up() {  # I: config as gateway_e2e.sh, started, API answering
  local f
  nc_config "$1" listen 0.0.0.0:8083
  if [ -z "$NO_GATEWAY" ]; then
    nc_config "$1" gateway_socket "$(nc_dir "$1")/gateway.sock"
    # edged refuses an account key without an account id
    nc_config "$1" account_id bench
    nc_config "$1" account_key_file "$ACCOUNT_KEY"
  fi
  nc_start "$1" || return 1
  wait_until 30 healthy_or_dead "$1"
  nc_healthy "$1" && return 0
  if [ -z "$NO_GATEWAY" ] && grep -q 'gateway_socket: unknown setting' "$(nc_dir "$1")/edged.log"; then
    NO_GATEWAY="this edged ($BUILD/bin/edged) has no gateway: it does not know the gateway_socket setting"
    log "$NO_GATEWAY; its nodes run without the gateway settings"
    nc_stop "$1"
    f=$(nc_dir "$1")/config.extra
    grep -v -E '^(gateway_socket|account_id|account_key_file):' "$f" >"$f.new"
    mv "$f.new" "$f"
    node_up "$1"
    return
  fi
  return 1
}
healthy_or_dead() { nc_healthy "$1" || ! nc_running "$1"; }
last_log() {  # I: the end of node I's edged log, for a one-line reason
  grep -v '^--- start' "$(nc_dir "$1")/edged.log" 2>/dev/null | tail -n 2 | tr '\n' ' ' | head -c 400
}

# The peer service is an instance that listens nowhere (sleep) with an nginx of ours
# bound on its port in B's namespace, as gateway_e2e.sh does for its bad upstreams: the
# same keep-alive `return 200` backend as the other rows (the hello image's busybox httpd
# forks and closes per request, which would bound both rows alike and hide the gateway).
peer_doc() {
  cat <<EOF
apiVersion: edge/v1
kind: Service
metadata: {name: peer}
spec:
  image: ./hello.tar
  replicas: 1
  ports: [{name: http}]
  resources: {memory: 32Mi, pids: 64}
  command: [sh, -c, "exec sleep 1000000"]
  healthCheck: {tcp: {port: http}, interval: 200ms, timeout: 200ms, retries: 10, startPeriod: 30s}
  route: {basePath: /peer}
EOF
}

running_port() {  # I SERVICE: sets RP to the port of a running instance
  RP=$(node_instances "$1" "$2" | awk '$1 == "running" { print $3; exit }')
  [ -n "$RP" ] && [ "$RP" != - ]
}

start_peer_backend() {  # I PORT BODY: nginx in node I's namespace on 0.0.0.0:PORT
  local i=$1 port=$2 body=$3 rc
  {
    nginx_common peer-backend 1
    echo "http {"
    nginx_http_common peer-backend
    cat <<EOF
  server {
    listen 0.0.0.0:$port backlog=4096;
    default_type text/plain;
    location / { return 200 "$body\n"; }
  }
}
EOF
  } >"$WORK/peer-backend.conf"
  IN_NS=(nsenter --net="/run/netns/$(nc_ns "$i")")
  start_nginx peer-backend "${CPUS_LOAD:-0}" "$port"
  rc=$?
  PEER_BACKEND_PID=$BG_PID
  IN_NS=()
  return $rc
}

peer_rows() {
  XR[peer_state]=
  if ! extra_init; then XR[peer_state]="not measured: $EXTRA_WHY"; return 1; fi
  local A=1 B=2 ipb rep t url_d url_g
  if ! nc_add_node $A 1 || ! nc_add_node $B 1; then XR[peer_state]="not measured: namespaces"; return 1; fi
  ipb=$(nc_addr $B)
  log "peer: edged on n$A and n$B ($(nc_addr $A), $ipb) on one bridge"
  for t in $A $B; do
    node_up "$t" || { XR[peer_state]="not measured: n$t's edged did not come up: $(last_log "$t")"; return 1; }
  done
  peer_doc >"$NC_DIR/peer.yaml"
  if ! nc_edgectl $B apply -f "$NC_DIR/peer.yaml" >"$NC_DIR/peer.apply" 2>&1; then
    XR[peer_state]="not measured: apply on n$B: $(tr '\n' ' ' <"$NC_DIR/peer.apply")"
    return 1
  fi
  if ! wait_until 60 running_port $B peer; then
    XR[peer_state]="not measured: the service on n$B not running in 60 s"
    return 1
  fi
  if ! start_peer_backend $B "$RP" node=n2; then
    XR[peer_state]="not measured: nginx on n$B's port $RP did not start"
    return 1
  fi
  if ! wait_until 30 ready_port $B peer; then
    XR[peer_state]="not measured: the service on n$B not ready in 30 s with nginx on its port $RP"
    return 1
  fi
  url_d="http://$ipb:$RP/peer/who"
  url_g="http://127.0.0.1:8083/peer/who"
  if ! wait_until 10 answers_in $A "$url_d" node=n2; then
    XR[peer_state]="not measured: $url_d does not answer node=n2 from n$A"
    return 1
  fi
  local gw_ok=1
  XR[peer_state]=ok
  if [ -n "$NO_GATEWAY" ]; then
    gw_ok=0
    XR[peer_state]="gateway row not measurable: $NO_GATEWAY"
  elif ! wait_until 30 answers_in $A "$url_g" node=n2; then
    # The direct row is still measured: the baseline the gateway row will be held to.
    gw_ok=0
    XR[peer_state]="gateway row not measurable: n$A's gateway ($url_g) does not get to n$B's service within 30 s: $(nc_exec $A curl -sS -m 5 "$url_g" 2>&1 | tr '\n' ' ' | head -c 200)"
  fi
  XNOTE[peer]="n$A -> $url_g (edged n$A -> mTLS -> edged n$B -> service) vs n$A -> $url_d"
  WRK_PREFIX=(nsenter --net="/run/netns/$(nc_ns $A)")
  wrk_run "$url_d" 16 1 - >/dev/null
  ((gw_ok)) && wrk_run "$url_g" 16 1 - >/dev/null
  for rep in $(seq "$REPS"); do
    XR["peer_direct $rep"]=$(wrk_run "$url_d" 16 "$DURATION" -)
    log "peer rep $rep direct: ${XR["peer_direct $rep"]}"
    ((gw_ok)) || continue
    XR["peer_gateway $rep"]=$(wrk_run "$url_g" 16 "$DURATION" "${NC_PID[$A]} ${NC_PID[$B]}")
    log "peer rep $rep gateway: ${XR["peer_gateway $rep"]}"
  done
  WRK_PREFIX=()
  stop_bg "$PEER_BACKEND_PID"
  for t in $A $B; do nc_stop "$t"; done
  ((gw_ok))
}

# --cold-start. The light runtime: one node alone on a bridge of its own (gateway on its
# 127.0.0.1:8083). Docker: its containers use the host's network, so that edged runs in
# this namespace (discovery off, listen on a free loopback port), and only when dockerd
# holds no managed container of someone else (edged on Docker removes the managed
# containers it does not want).
COLD_IDLE=2s

cold_doc() {  # NODE
  svc_doc lazy "$1" /lazy "  lifecycle: {mode: on-demand, idleTimeout: $COLD_IDLE}"
}

# One runtime's reps: curl's time_total of the first call (starts the service), then the
# median of 10 warm calls; then until the idle timeout has stopped it again.
# cold_measure KIND CALL_PREFIX... -- URL ; instance counting via COUNT_FN
cold_measure() {  # KIND URL COUNT_FN PREFIX...
  local kind=$1 url=$2 count_fn=$3 rep out warm=()
  shift 3
  COLD_PORT=
  for rep in $(seq "$REPS"); do
    if ! wait_until 30 cold_stopped "$count_fn" "$@"; then
      XR["cold_${kind}_state"]="instances still running 30 s after the idle timeout ($COLD_IDLE)"
      return 1
    fi
    out=$("$@" curl -sS -m 60 -o /dev/null -w '%{http_code} %{time_total}' "$url" 2>"$WORK/curl.err")
    if [ "${out%% *}" != 200 ]; then
      XR["cold_${kind}_state"]="the first call to $url answered ${out%% *}, want 200 $(tr '\n' ' ' <"$WORK/curl.err" | head -c 200)"
      return 1
    fi
    XR["cold_${kind}_first $rep"]=$(awk -v t="${out#* }" 'BEGIN { printf "%.1f", t * 1000 }')
    warm=()
    local warm_errs=0
    for _ in $(seq 10); do
      out=$("$@" curl -sS -m 10 -o /dev/null -w '%{http_code} %{time_total}' "$url" 2>/dev/null)
      if [ "${out%% *}" = 200 ]; then
        warm+=("$(awk -v t="${out#* }" 'BEGIN { printf "%.3f", t * 1000 }')")
      else
        warm_errs=$((warm_errs + 1))
      fi
    done
    XR["cold_${kind}_warm_errs $rep"]=$warm_errs
    XR["cold_${kind}_warm $rep"]=$(median "${warm[@]}")
    COLD_PORT=$("$count_fn" port)
    log "cold start $kind rep $rep: first ${XR["cold_${kind}_first $rep"]} ms, warm ${XR["cold_${kind}_warm $rep"]} ms"
  done
  XR["cold_${kind}_state"]=ok
}
# Stopped: no instance listed and nothing answering on the last instance's port. edged
# drops the instance from its list before the process is gone, and a call in between
# was served by the stopping instance in 1 ms (not a cold start).
cold_stopped() {  # COUNT_FN PREFIX...
  local fn=$1
  shift
  [ "$("$fn")" = 0 ] || return 1
  [ -z "$COLD_PORT" ] || ! "$@" curl -s -o /dev/null -m 1 "http://127.0.0.1:$COLD_PORT/" 2>/dev/null
}

# COUNT_FN: the number of instances of lazy (any state); with "port", the first one's port
light_count() { lazy_count "${1:-}" < <(nc_edgectl 3 get instances -o json 2>/dev/null); }
docker_count() { lazy_count "${1:-}" < <(docker_edgectl get instances -o json 2>/dev/null); }
lazy_count() {  # [port], the node's instances as JSON on stdin; "?" when unreadable
  local out
  out=$(instances_of lazy 2>/dev/null) || { echo "?"; return; }
  if [ "${1:-}" = port ]; then
    awk '{ print $3; exit }' <<<"$out"
  else
    grep -c . <<<"$out"
  fi
}

cold_rows() {
  if ! extra_init; then
    XR[cold_light_state]="not measured: $EXTRA_WHY"
    XR[cold_docker_state]="not measured: $EXTRA_WHY"
    return 1
  fi
  local L=3
  # Alone on bridge 2: not part of the --peer cluster.
  if nc_add_node $L 2 && node_up $L && [ -n "$NO_GATEWAY" ]; then
    XR[cold_light_state]="not measurable: $NO_GATEWAY"
    nc_stop $L
  elif nc_running $L && nc_healthy $L; then
    cold_doc n3 >"$NC_DIR/lazy.yaml"
    if nc_edgectl $L apply -f "$NC_DIR/lazy.yaml" >"$NC_DIR/lazy.apply" 2>&1 &&
      # The route reaches the gateway's table a moment after the apply (a call before
      # is a 404, not a cold start).
      wait_until 10 lazy_routed nc_api $L; then
      XNOTE[cold_light]="edged (light runtime) in a namespace, http://127.0.0.1:8083/lazy/who"
      cold_measure light http://127.0.0.1:8083/lazy/who light_count nsenter --net="/run/netns/$(nc_ns $L)" ||
        XR[cold_light_state]="not measured: ${XR[cold_light_state]:-}"
    else
      XR[cold_light_state]="not measured: apply, or /lazy not in /api/v1/routes within 10 s: $(tr '\n' ' ' <"$NC_DIR/lazy.apply")"
    fi
    nc_edgectl $L delete lazy >/dev/null 2>&1
    nc_stop $L
  else
    XR[cold_light_state]="not measured: n$L's edged did not come up: $(last_log $L)"
  fi
  cold_docker || XR[cold_docker_state]="not measured: ${XR[cold_docker_state]:-}"
}

lazy_routed() {  # API_FN [ARGS...]: GET /api/v1/routes lists /lazy
  "$@" /api/v1/routes 2>/dev/null | grep -q '"/lazy"'
}
docker_api() { curl -fsS -m 5 --unix-socket "$EDGED_ROOT_DIR/edged.sock" "http://node$1"; }

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

docker_edgectl() { "$BUILD/bin/edgectl" --host "unix://$EDGED_ROOT_DIR/edged.sock" "$@"; }

cold_docker() {
  local port foreign
  if [ -n "$NO_GATEWAY" ]; then
    XR[cold_docker_state]="$NO_GATEWAY"
    return 1
  fi
  if ! command -v docker >/dev/null || ! timeout 10 docker info >/dev/null 2>&1; then
    XR[cold_docker_state]="no Docker Engine answers (scripts/start-dockerd.sh)"
    return 1
  fi
  foreign=$(timeout 10 docker ps -aq --filter label=io.edgecloud.managed=true | wc -l)
  if ((foreign > 0)); then
    XR[cold_docker_state]="dockerd holds $foreign managed container(s) of someone else: edged on Docker would remove them"
    return 1
  fi
  # edged loads the hello image into dockerd: removed at the end unless it was there.
  HELLO_WAS_IN_DOCKER=0
  timeout 10 docker image inspect edgecloud/hello:latest >/dev/null 2>&1 && HELLO_WAS_IN_DOCKER=1
  port=$(free_port)
  EDGED_ROOT_DIR=$WORK/edged-docker
  mkdir -p "$EDGED_ROOT_DIR/data" "$EDGED_ROOT_DIR/run"
  cat >"$EDGED_ROOT_DIR/config.yaml" <<EOF
node_name: bench-docker
data_dir: $EDGED_ROOT_DIR/data
run_dir: $EDGED_ROOT_DIR/run
api_socket: $EDGED_ROOT_DIR/edged.sock
runtime: docker
log_level: info
discovery: false
listen: 127.0.0.1:$port
gateway_socket: $EDGED_ROOT_DIR/gateway.sock
account_id: bench
account_key_file: $ACCOUNT_KEY
EOF
  "$BUILD/bin/edged" -c "$EDGED_ROOT_DIR/config.yaml" >"$EDGED_ROOT_DIR/edged.log" 2>&1 </dev/null &
  EDGED_ROOT_PID=$!
  if ! wait_until 30 docker_edgectl get services >/dev/null; then
    XR[cold_docker_state]="edged on Docker did not come up: $(tail -3 "$EDGED_ROOT_DIR/edged.log" | tr '\n' ' ')"
    docker_edged_stop
    return 1
  fi
  cold_doc bench-docker >"$NC_DIR/lazy-docker.yaml"
  if ! docker_edgectl apply -f "$NC_DIR/lazy-docker.yaml" >"$NC_DIR/lazy-docker.apply" 2>&1; then
    XR[cold_docker_state]="apply: $(tr '\n' ' ' <"$NC_DIR/lazy-docker.apply")"
    docker_edged_stop
    return 1
  fi
  if ! wait_until 10 lazy_routed docker_api; then
    XR[cold_docker_state]="/lazy not in GET /api/v1/routes 10 s after the apply"
    docker_edged_stop
    return 1
  fi
  XNOTE[cold_docker]="edged (Docker) in the root namespace, gateway on 127.0.0.1:$port (its listen)"
  cold_measure docker "http://127.0.0.1:$port/lazy/who" docker_count env
  local rc=$?
  docker_edged_stop
  return $rc
}

# edged leaves its workloads running when it stops: delete the service first, then make
# sure no managed container is left (there was none before: cold_docker checked).
docker_edged_stop() {
  [ -n "$EDGED_ROOT_PID" ] || return 0
  docker_edgectl delete lazy >/dev/null 2>&1
  wait_until 20 cold_stopped docker_count
  kill -TERM "$EDGED_ROOT_PID" 2>/dev/null
  wait_until 10 pid_gone "$EDGED_ROOT_PID" || kill -9 "$EDGED_ROOT_PID" 2>/dev/null
  wait "$EDGED_ROOT_PID" 2>/dev/null
  EDGED_ROOT_PID=
  local left
  left=$(timeout 10 docker ps -aq --filter label=io.edgecloud.managed=true --filter label=io.edgecloud.service=lazy 2>/dev/null)
  # shellcheck disable=SC2086  # one id per word
  [ -z "$left" ] || timeout 30 docker rm -f $left >/dev/null 2>&1
  ((HELLO_WAS_IN_DOCKER)) || timeout 30 docker rmi edgecloud/hello:latest >/dev/null 2>&1
}

xagg() {  # KEY FIELD -> median over the repetitions (fields as wrk_run's; errs summed)
  local k=$1 f=$2 rep vals=()
  for rep in $(seq "$REPS"); do vals+=("$(echo "${XR["$k $rep"]:-- - - - - -}" | cut -d' ' -f"$f")"); done
  if ((f == 6)); then
    printf '%s\n' "${vals[@]}" | awk '/^[0-9]+$/ { s += $1; n++ } END { print n ? s : "-" }'
  else
    median "${vals[@]}"
  fi
}

xmedian() {  # KEY -> median of XR["KEY <rep>"]
  local r vals=()
  for r in $(seq "$REPS"); do vals+=("${XR["$1 $r"]:--}"); done
  median "${vals[@]}"
}

print_peer() {
  local t
  echo
  echo "peer route (wrk -c16 from node A's namespace, median of $REPS x ${DURATION}s): ${XR[peer_state]:-not run}"
  printf '%-8s %-8s %10s %9s %9s %11s %6s\n' row target req/s p50_ms p99_ms cpu_us/req errs
  for t in direct gateway; do
    label="peer $t" figures XR "peer_$t" xagg 1 2 3 5 6
    printf '%-8s %-8s %10s %9s %9s %11s %6s\n' peer "$t" "${FIG[@]}"
  done
  [ -z "${XNOTE[peer]:-}" ] || echo "  ${XNOTE[peer]}; cpu_us/req: both edged processes"
  # A row with errors (or missing) gets no ratio: a proxy answering errors fast is not fast.
  local rps=- p99=-
  if [ -z "$(row_problem XR peer_gateway)" ] && [ -z "$(row_problem XR peer_direct)" ]; then
    rps=$(ratio "$(xagg peer_gateway 1)" "$(xagg peer_direct 1)")
    p99=$(ratio "$(xagg peer_gateway 3)" "$(xagg peer_direct 3)")
  fi
  echo "ratio peer_gateway_vs_direct_rps $rps"
  echo "ratio peer_gateway_vs_direct_p99 $p99"
}

print_cold() {
  local k first warm
  echo
  echo "on-demand cold start (curl time_total; first call starts the service; warm: median of 10; median of $REPS)"
  printf '%-8s %12s %12s %8s   %s\n' runtime first_ms warm_ms ratio state
  for k in light docker; do
    first=$(xmedian "cold_${k}_first")
    warm=$(xmedian "cold_${k}_warm")
    # Every repetition, and every warm call of each, or the row is not a result.
    if [ "${XR["cold_${k}_state"]:-}" != ok ] || [ -n "$(cold_problem "$k")" ]; then
      NOT_RESULTS+=("cold start $k: ${XR["cold_${k}_state"]:-not run} $(cold_problem "$k")")
      first=- warm=-
    fi
    printf '%-8s %12s %12s %8s   %s\n' "$k" "$first" "$warm" "$(ratio "$first" "$warm")" \
      "${XR["cold_${k}_state"]:-not run}${XNOTE["cold_$k"]:+ (${XNOTE["cold_$k"]})}"
    echo "ratio cold_start_${k}_first_vs_warm $(ratio "$first" "$warm")"
  done
  local lvd=-
  if [ -z "$(cold_problem light)" ] && [ -z "$(cold_problem docker)" ] &&
    [ "${XR[cold_light_state]:-}" = ok ] && [ "${XR[cold_docker_state]:-}" = ok ]; then
    lvd=$(ratio "$(xmedian cold_light_first)" "$(xmedian cold_docker_first)")
  fi
  echo "ratio cold_start_light_vs_docker $lvd"
}

cold_problem() {  # KIND: the repetitions that are missing or had failed warm calls
  local r why=
  for r in $(seq "$REPS"); do
    [ -n "${XR["cold_$1_first $r"]:-}" ] || why+="rep $r did not run; "
    ((${XR["cold_$1_warm_errs $r"]:-0} == 0)) || why+="rep $r: ${XR["cold_$1_warm_errs $r"]} warm calls not 200; "
  done
  printf '%s' "${why%; }"
}

# ---------------------------------------------------------------- run

if ((DO_CORE)); then
  core || log "core rows incomplete"
fi
if ((DO_PEER || DO_COLD)); then
  ((DO_PEER)) && { peer_rows || log "peer rows incomplete"; }
  ((DO_COLD)) && { cold_rows || log "cold-start rows incomplete"; }
fi
if ((DO_CORE)); then print_core; fi
if ((DO_PEER)); then print_peer; fi
if ((DO_COLD)); then print_cold; fi
if ((${#NOT_RESULTS[@]} > 0)); then
  echo
  echo "gateway_bench: ${#NOT_RESULTS[@]} requested row(s) are not results:"
  printf '  %s\n' "${NOT_RESULTS[@]}"
  exit 1
fi
