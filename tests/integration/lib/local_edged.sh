# shellcheck shell=bash
# One edged on this host for a test, sourced by edgectl_e2e.sh and metrics_lint.sh: the
# light runtime, discovery off, everything under a temp dir (data, run dir, API and
# gateway sockets), the cluster port on a random 127.0.0.1 port. It never touches
# /var/lib/edged, /run/edged or Docker, so it runs beside any other test.
#
#   le_start DIR      writes DIR/config.yaml, starts edged, waits for its API
#   le_ctl ARGS...    edgectl against it
#   le_cleanup        deletes its services, stops it, kills what is left of its
#                     containers (by pid, found under DIR), unmounts what the light
#                     runtime mounted under DIR, removes DIR
#
# Needs EDGE_BUILD_DIR (or build/ next to the sources) and root (the light runtime).

LE_BUILD=${EDGE_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/build}
LE_BIN=$LE_BUILD/bin
LE_DIR=
LE_PID=

le_ctl() { "$LE_BIN/edgectl" --host "unix://$LE_DIR/edged.sock" --timeout 30s "$@"; }

# N TCP ports free on 127.0.0.1 right now, from the kernel (bound together, then
# released), one per line. A random pick from a range collided with other tests' ports
# when ctest runs two at a time.
le_free_ports() {  # N
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

le_start() {  # DIR
  LE_DIR=$1
  mkdir -p "$LE_DIR"
  # Dynamic ports from a random 500-port block, so two runs (or other tests) do not meet.
  local base=$((30000 + (RANDOM % 40) * 500)) listen
  listen=$(le_free_ports 1)
  cat >"$LE_DIR/config.yaml" <<CFG
data_dir: $LE_DIR/data
run_dir: $LE_DIR/run
api_socket: $LE_DIR/edged.sock
api_socket_group: ""
gateway_socket: $LE_DIR/gateway.sock
runtime: light
listen: 127.0.0.1:$listen
port_range: $base-$((base + 499))
log_level: info
discovery: false
CFG
  "$LE_BIN/edged" --config "$LE_DIR/config.yaml" >>"$LE_DIR/edged.log" 2>&1 &
  LE_PID=$!
  for _ in $(seq 100); do
    le_ctl status >/dev/null 2>&1 && return 0
    kill -0 "$LE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "edged did not come up; its log:" >&2
  tail -n 30 "$LE_DIR/edged.log" >&2
  return 1
}

# The pids of the edge-shim processes (and their containers) of this edged: a shim's
# command line names the container's directory under our data dir.
le_workload_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    [[ $cmd == "edge-shim $LE_DIR/"* ]] && echo "${p#/proc/}"
  done
}

le_cleanup() {
  [ -n "$LE_DIR" ] || return 0
  local s
  if [ -n "$LE_PID" ] && kill -0 "$LE_PID" 2>/dev/null; then
    for s in $(le_ctl get services -q 2>/dev/null); do le_ctl delete "$s" -q 2>/dev/null; done
    for _ in $(seq 50); do
      [ -z "$(le_ctl get instances -q 2>/dev/null)" ] && break
      sleep 0.1
    done
    kill -TERM "$LE_PID" 2>/dev/null
    wait "$LE_PID" 2>/dev/null
  fi
  LE_PID=
  # Whatever survived (a failed test, a stuck stop): the shims and their cgroups' members.
  for s in $(le_workload_pids); do kill -9 "$s" 2>/dev/null; done
  local d procs
  for d in "$LE_DIR"/data/runtime/light/containers/*/; do
    [ -d "$d" ] || continue
    for procs in /sys/fs/cgroup/pids/edgecloud/"$(basename "$d")"/cgroup.procs \
                 /sys/fs/cgroup/edgecloud/"$(basename "$d")"/cgroup.procs; do
      [ -f "$procs" ] && xargs -r kill -9 <"$procs" 2>/dev/null
    done
  done
  # The light runtime mounts a tmpfs for its volatile state when the run dir is not one,
  # and overlays for containers; deepest first.
  awk -v t="$LE_DIR/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$LE_DIR"
  LE_DIR=
}
