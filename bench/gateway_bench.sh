#!/usr/bin/env bash
# Gateway benchmark (issue 6 section 8): wrk against one small HTTP backend, in the same
# run and on the same machine, directly, through our gateway (edge-gateway) and through
# Debian's nginx as a reverse proxy with the same number of workers.
#
#   bench/gateway_bench.sh [--quick] [--conns 16,64,256] [--reps 3] [--duration S]
#                          [--workers W] [--big-size BYTES] [--gateway-cmd TEMPLATE]
#                          [--placeholder] [--no-pin] [--cpus-load LIST] [--cpus-proxy LIST]
#                          [--wrk-threads N] [--peer] [--cold-start] [--keep]
#   --quick        c=64 only, 3 repetitions of 2 s: under a minute
#   --gateway-cmd  how to start our gateway; %P is its port, %W the workers, %B the
#                  backend's port. Default:
#                  $EDGE_BUILD_DIR/bin/edge-gateway --listen 127.0.0.1:%P --workers %W
#                  --route /=127.0.0.1:%B
#   --placeholder  when edge-gateway is not built, a second nginx proxy stands in for it
#                  (to work on this script; its rows say "placeholder", not a result)
#   --peer         (root) the peer route: two edged nodes in network namespaces on a
#                  bridge, node A's gateway (port 8083, route /<service>) forwarding to a
#                  service on node B over mTLS, against calling node B's service directly
#                  from A's namespace
#   --cold-start   (root) an on-demand service (lifecycle: {mode: on-demand}): the first
#                  request, which starts it, against a warm request; light runtime and
#                  Docker (when a Docker Engine answers)
#   (EDGE_BUILD_DIR=build by default; needs wrk, nginx-light, curl: scripts/install-deps.sh)
#
# The backend is one nginx (1 worker, its own temporary prefix, never the system config)
# answering `return 200` with a 23-byte body on /, and a static file of --big-size bytes
# (1 MiB) on /big with sendfile: the same backend for every row.
# Proxies: our gateway with --workers W; nginx with worker_processes W, an upstream with
# `keepalive 64`, proxy_http_version 1.1, Connection "", access_log off, no temp files
# (proxy_max_temp_file_size 0: large bodies stream through its buffers).
# Pinning (2 cores shared with builds): wrk (1 thread) and the backend on --cpus-load
# (default CPU 0), the proxy under test alone on --cpus-proxy (default every other CPU),
# so that the proxy is the bottleneck and both proxies get the same CPUs. --no-pin turns
# it off. Everything measured runs at niceness --nice (-20): builds running beside the
# bench then take little of those CPUs. Rows are interleaved (direct, gateway, nginx, then the next repetition) so that
# load from other processes on the machine hits every row alike; each figure is the
# median of the repetitions, each metric taken separately. cpu_us/req is the proxy's own
# CPU time (user+system, every process and thread of it) per request: it moves less with
# the machine's load than requests/s. A row with non-2xx answers or socket errors says so
# in its `errs` column: such a row is not a result.
# Prints the table and `ratio <what> <value>` lines: gateway/nginx for requests/s (above
# 1: ours is faster) and p99 (below 1: ours is better).
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
GATEWAY_CMD="$BUILD/bin/edge-gateway --listen 127.0.0.1:%P --workers %W --route /=127.0.0.1:%B"
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
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument '$1' (allowed: --quick --conns N,N,... --reps N --duration S --workers W --big-size BYTES --gateway-cmd TEMPLATE --placeholder --no-pin --nice N --cpus-load LIST --cpus-proxy LIST --wrk-threads N --peer --cold-start --only-extra --keep)" ;;
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
    CPUS_PROXY=${CPUS_PROXY:-1-$((NCPU - 1))}
  fi
fi
# With autogroup scheduling (kernel.sched_autogroup_enabled), CPU time is shared between
# sessions first, and a process's niceness counts only inside its session: the builds of
# other sessions would keep their share whatever --nice says. The bench runs in a session
# of its own whose autogroup gets the niceness.
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

wait_http() {  # PID URL SECONDS: 0 once URL answers 200, 1 when PID died or time is up
  local pid=$1 url=$2 deadline=$(($(now_ns) + $3 * 1000000000))
  until curl -fsS -o /dev/null -m 1 "$url" 2>/dev/null; do
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
  start_bg "$name" "$cpus" nginx -e "$WORK/$name/error.log" -p "$WORK/$name" -c "$WORK/$name.conf"
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
    listen 127.0.0.1:$port backlog=4096;
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

# wrk_run URL CONNS SECONDS PROXY_PID(or -) -> "rps p50_ms p99_ms mib_s cpu_us_per_req errs"
wrk_run() {
  local url=$1 conns=$2 secs=$3 ppid=$4 out t0=0 t1=0
  [ "$ppid" = - ] || t0=$(cpu_ticks "$ppid")
  out=$(pinned "${CPUS_LOAD:-0}" timeout $((secs + 20)) wrk -t"$WRK_THREADS" -c"$conns" -d"${secs}s" \
    --latency --timeout 5s "$url" 2>&1)
  local rc=$?
  [ "$ppid" = - ] || t1=$(cpu_ticks "$ppid")
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
      cpu = (proxied && n > 0) ? sprintf("%.1f", ticks * 1e6 / tck / n) : "-"
      if (rps == "") { print "- - - - - no-output"; exit }
      printf "%.0f %.3f %.3f %.1f %s %d\n", rps, p50, p99, mb, cpu, errs
    }'
}

# ---------------------------------------------------------------- core rows

declare -A RES=() # "<target> <conns|big> <rep>" -> wrk_run's line
declare -A NOTE=()
TARGETS=(direct gateway nginx)

median() {  # values... ("-" ignored) -> median, or -
  printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
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
      for t in "${TARGETS[@]}"; do
        live "$t" || continue
        RES["$t $c $rep"]=$(wrk_run "http://127.0.0.1:${PORT[$t]}/" "$c" "$DURATION" "${PPID_OF[$t]}")
        log "rep $rep c=$c $t: ${RES["$t $c $rep"]}"
      done
    done
  done
  for rep in $(seq "$REPS"); do
    for t in "${TARGETS[@]}"; do
      live "$t" || continue
      RES["$t big $rep"]=$(wrk_run "http://127.0.0.1:${PORT[$t]}/big" "$BIG_CONNS" "$DURATION" "${PPID_OF[$t]}")
      log "rep $rep big c=$BIG_CONNS $t: ${RES["$t big $rep"]}"
    done
  done
  for pid in "$gpid" "$npid" "$BACKEND_PID"; do
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

ratio() {  # A B -> A/B, or - when either is missing
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.3f", a / b; else printf "-" }'
}

size_label() {  # BYTES -> 1MiB, 64KiB, 100B
  if (($1 % 1048576 == 0)); then echo "$(($1 / 1048576))MiB"
  elif (($1 % 1024 == 0)); then echo "$(($1 / 1024))KiB"
  else echo "$1B"; fi
}

print_core() {
  local c t k label
  echo
  echo "gateway_bench: median of $REPS x ${DURATION}s per row, wrk -t$WRK_THREADS, proxies with $WORKERS worker(s)$( ((PIN)) && echo ", wrk+backend on CPU $CPUS_LOAD, proxy on CPU $CPUS_PROXY")"
  printf '%-8s %-6s %-9s %10s %9s %9s %9s %11s %6s\n' row target conns req/s p50_ms p99_ms MiB/s cpu_us/req errs
  for k in "${CONN_LIST[@]}" big; do
    for t in "${TARGETS[@]}"; do
      if [ "$k" = big ]; then label=$(size_label "$BIG_SIZE"); c=$BIG_CONNS; else label=small; c=$k; fi
      printf '%-8s %-6s %-9s %10s %9s %9s %9s %11s %6s\n' "$label" "$t" "$c" \
        "$(agg "$t" "$k" 1)" "$(agg "$t" "$k" 2)" "$(agg "$t" "$k" 3)" "$(agg "$t" "$k" 4)" \
        "$(agg "$t" "$k" 5)" "$(agg "$t" "$k" 6)"
    done
  done
  for t in "${TARGETS[@]}"; do echo "  $t: ${NOTE[$t]}"; done
  echo
  for k in "${CONN_LIST[@]}"; do
    echo "ratio gateway_vs_nginx_rps_c$k $(ratio "$(agg gateway "$k" 1)" "$(agg nginx "$k" 1)")"
    echo "ratio gateway_vs_nginx_p99_c$k $(ratio "$(agg gateway "$k" 3)" "$(agg nginx "$k" 3)")"
    echo "ratio gateway_vs_nginx_cpu_per_req_c$k $(ratio "$(agg gateway "$k" 5)" "$(agg nginx "$k" 5)")"
  done
  echo "ratio gateway_vs_nginx_mibps_big $(ratio "$(agg gateway big 4)" "$(agg nginx big 4)")"
  echo "ratio gateway_vs_nginx_p99_big $(ratio "$(agg gateway big 3)" "$(agg nginx big 3)")"
  echo "ratio gateway_vs_direct_rps_c64 $(ratio "$(agg gateway 64 1)" "$(agg direct 64 1)")"
  echo "ratio nginx_vs_direct_rps_c64 $(ratio "$(agg nginx 64 1)" "$(agg direct 64 1)")"
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
