#!/usr/bin/env bash
# edged end to end, as a user drives it: edgectl and the stock docker CLI against a real
# edged on a real runtime (light or docker). Covers apply/validate, health-gated
# rollouts, rollback, logs, unmanaged containers made with `docker run`, crash restart,
# kill -9 of edged in the middle of a rollout (adopt, no duplicates), SIGTERM that leaves
# workloads running, and a reboot without network (all processes and volatile state gone,
# edged restarted in a network namespace that has only loopback).
#
#   tests/integration/edged_e2e.sh light|docker     (root; EDGE_BUILD_DIR=build)
#
# Exit status 77 (skipped) when not root, or for docker when no dockerd answers and
# EDGE_REQUIRE_DOCKER is not 1.
set -euo pipefail

RUNTIME=${1:-light}
case $RUNTIME in
  light) PORTS=21000-21999 ;;
  docker) PORTS=22000-22999 ;;
  *) echo "usage: $0 light|docker" >&2; exit 2 ;;
esac
# shellcheck source=lib/e2e.sh
. "$(dirname "$0")/lib/e2e.sh"  # BUILD; the skip rules: not root, no dockerd (exit 77)
E2E_NAME=edged_e2e_$RUNTIME
e2e_need_root "namespaces, cgroups, the $RUNTIME runtime"
[ "$RUNTIME" = light ] || e2e_need_docker
BIN=$BUILD/bin
IMAGES=$BUILD/images
T=$(mktemp -d /tmp/edged-e2e-$RUNTIME.XXXXXX)
SOCK=$T/edged.sock
DATA=$T/data
RUN=$T/run
NETNS=edge-e2e-off-$$
EDGED_PID=
export EDGE_HOST=unix://$SOCK

step() { echo; echo "=== $*"; }
fail() {
  echo "FAIL: $*" >&2
  echo "--- edged log (last 60 lines):" >&2
  tail -n 60 "$T/edged.log" >&2 || true
  exit 1
}
ctl() { "$BIN/edgectl" --timeout 30s "$@"; }
dockercli() { docker -H "unix://$SOCK" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# Pipelines into grep use `grep PATTERN >/dev/null`, not `grep -q`: with pipefail, grep -q
# quitting at the first match can kill the writer with SIGPIPE and fail the pipeline.

# wait_until SECONDS DESCRIPTION COMMAND...: polls every 200 ms.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "--- last state:" >&2
      ctl get instances >&2 || true
      fail "timed out after ${limit}s waiting for: $what"
    fi
    sleep 0.2
  done
}

start_edged() {  # [netns]
  local prefix=()
  # nsenter joins only the network namespace; `ip netns exec` would also remount /sys
  # and hide the cgroup hierarchies, which no real boot does.
  [ -n "${1:-}" ] && prefix=(nsenter --net=/var/run/netns/"$1")
  "${prefix[@]}" "$BIN/edged" --config "$T/config.yaml" --runtime "$RUNTIME" \
    >>"$T/edged.log" 2>&1 &
  EDGED_PID=$!
  wait_until 20 "edged to answer on $SOCK" ctl status
}

stop_edged() {  # SIGTERM: workloads keep running
  [ -n "$EDGED_PID" ] || return 0
  kill -TERM "$EDGED_PID" 2>/dev/null || true
  wait "$EDGED_PID" 2>/dev/null || true
  EDGED_PID=
}

service_state() {  # NAME -> prints state
  ctl get services "$1" -o json | json "print(d['state'] if 'state' in d else d['services'][0]['state'])"
}
service_is() { [ "$(service_state "$1")" = "$2" ]; }

# Every instance of SERVICE is of generation GEN, ready, and there are exactly N.
converged() {  # SERVICE GEN N
  ctl get instances -o json | json "
inst=[i for i in d['instances'] if i['service']=='$1']
assert len(inst)==$3, inst
assert all(i['generation']==$2 and i['ready'] and i['state']=='running' for i in inst), inst
"
}

instance_ports() {  # SERVICE -> one port per line
  ctl get instances -o json | json "
for i in d['instances']:
    if i['service']=='$1': print(i['ports']['http'])"
}

instance_ids() {  # SERVICE -> sorted ids
  ctl get instances -o json | json "
print(' '.join(sorted(i['id'] for i in d['instances'] if i['service']=='$1')))"
}

answers() {  # PORT [NETNS]
  if [ -n "${2:-}" ]; then
    nsenter --net=/var/run/netns/"$2" curl -fsS -m 2 "http://127.0.0.1:$1/" | grep "Hello from Edgecloud" >/dev/null
  else
    curl -fsS -m 2 "http://127.0.0.1:$1/" | grep "Hello from Edgecloud" >/dev/null
  fi
}

greeting_is() {  # PORT GREETING: the instance's page shows the greeting of its environment
  curl -fsS -m 2 "http://127.0.0.1:$1/" | grep "<p id=\"greeting\">$2</p>" >/dev/null
}

every_instance_greets() {  # SERVICE GREETING
  local p n=0
  for p in $(instance_ports "$1"); do
    greeting_is "$p" "$2" || fail "$1's instance on port $p does not greet '$2': $(curl -sS -m 2 "http://127.0.0.1:$p/" 2>&1 | tr '\n' ' ')"
    n=$((n + 1))
  done
  ((n > 0)) || fail "$1 has no instance to ask for its greeting"
}

mid_rollout() {  # SERVICE OLD NEW: instances of both generations exist
  ctl get instances -o json | json "
g={i['generation'] for i in d['instances'] if i['service']=='$1'}
assert $2 in g and $3 in g, g"
}

kill_workloads() {  # what a power cut does: every container process and shim dies
  if [ "$RUNTIME" = light ]; then
    pkill -9 -f "^edge-shim $DATA/" || true
    for d in "$DATA"/runtime/light/containers/*/; do
      id=$(basename "$d")
      for procs in /sys/fs/cgroup/pids/edgecloud/"$id"/cgroup.procs \
                   /sys/fs/cgroup/edgecloud/"$id"/cgroup.procs; do
        [ -f "$procs" ] && xargs -r kill -9 <"$procs" 2>/dev/null || true
      done
    done
    sleep 0.5
    # /run is a tmpfs: a reboot empties it.
    for m in $(awk -v r="$RUN" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r); do
      umount -l "$m" || true
    done
    rm -rf "$RUN"
  else
    for s in hello worker; do
      docker ps -q --filter "label=io.edgecloud.service=$s" --filter "label=io.edgecloud.e2e=$$" |
        xargs -r docker kill >/dev/null || true
    done
  fi
}

cleanup() {
  local rc=$?
  set +e
  if [ -z "$EDGED_PID" ] || ! kill -0 "$EDGED_PID" 2>/dev/null; then
    "$BIN/edged" --config "$T/config.yaml" --runtime "$RUNTIME" >>"$T/edged.log" 2>&1 &
    EDGED_PID=$!
    for _ in $(seq 50); do ctl status >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  for s in $(ctl get services -q 2>/dev/null); do ctl delete "$s" -q; done
  dockercli rm -f byhand >/dev/null 2>&1
  for _ in $(seq 100); do
    [ "$(ctl get instances -o json 2>/dev/null | json 'print(len(d["instances"]))' 2>/dev/null)" = 0 ] && break
    sleep 0.2
  done
  stop_edged
  if [ "$RUNTIME" = light ]; then
    pkill -9 -f "^edge-shim $DATA/"
  else
    docker ps -aq --filter "label=io.edgecloud.e2e=$$" | xargs -r docker rm -f >/dev/null
  fi
  ip netns del "$NETNS" 2>/dev/null
  for m in $(awk -v r="$T" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  [ $rc -eq 0 ] && rm -rf "$T" || echo "kept $T for inspection" >&2
  exit $rc
}
trap cleanup EXIT

[ -x "$BIN/edged" ] && [ -x "$BIN/edgectl" ] || fail "build edged and edgectl first"
[ -f "$IMAGES/hello.tar" ] || fail "no $IMAGES/hello.tar (target edge_test_images)"

mkdir -p "$T/app"
cp "$IMAGES/hello.tar" "$T/app/hello.tar"
cat >"$T/config.yaml" <<CFG
data_dir: $DATA
run_dir: $RUN
api_socket: $SOCK
api_socket_group: ""
# The gateway's own socket and port, not the host's (/run/edged, 0.0.0.0:8083).
gateway_socket: $T/gateway.sock
listen: 127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log_level: info
port_range: $PORTS
# Multicast on this host's own links is not ours to send; cluster_e2e.sh tests
# discovery in network namespaces.
discovery: false
CFG

hello_manifest() {  # GREETING [HEALTH-CHECK INTERVAL]
  cat >"$T/app/hello.yaml" <<YAML
apiVersion: edge/v1
kind: Service
metadata: {name: hello, labels: {io.edgecloud.e2e: "$$"}}
spec:
  image: ./hello.tar
  replicas: 2
  ports: [{name: http}]
  env: [{name: GREETING, value: "$1"}]
  resources: {memory: 32Mi, pids: 64}
  healthCheck:
    http: {path: /healthz, port: http}
    interval: ${2:-1s}
    timeout: 500ms
    retries: 2
YAML
}

step "edged starts on the $RUNTIME runtime"
start_edged
ctl status
ctl status -o json | json "assert d['runtime']['kind']=='$RUNTIME', d"

step "a bad manifest is refused with every error, and changes nothing"
cat >"$T/app/bad.yaml" <<'YAML'
apiVersion: edge/v1
kind: Service
metadata: {name: Bad_Name}
spec:
  image: busybox
  replicas: three
  resources: {memory: 64MB}
  colour: red
YAML
set +e
ctl apply -f "$T/app/bad.yaml" 2>"$T/err"
rc=$?
set -e
cat "$T/err"
[ $rc -eq 4 ] || fail "bad manifest: exit code $rc, want 4"
for p in metadata.name spec.replicas spec.resources.memory spec.colour; do
  grep -q "$p" "$T/err" || fail "the error list does not name $p"
done
[ "$(ctl get services -q | wc -l)" = 0 ] || fail "a refused apply left a service behind"

step "scope cluster is refused, all or nothing, not run here as if it were scope node"
cat >"$T/app/cluster.yaml" <<'YAML'
apiVersion: edge/v1
kind: Service
metadata: {name: fine}
spec: {image: busybox}
---
apiVersion: edge/v1
kind: Service
metadata: {name: spread}
spec:
  image: busybox
  replicas: 3
  placement: {scope: cluster}
YAML
set +e
ctl apply -f "$T/app/cluster.yaml" 2>"$T/err"
rc=$?
set -e
cat "$T/err"
[ $rc -eq 4 ] || fail "scope cluster: exit code $rc, want 4"
grep -q "doc 2: spec.placement.scope: scope cluster is not available" "$T/err" ||
  fail "the error does not name doc 2's spec.placement.scope"
[ "$(ctl get services -q | wc -l)" = 0 ] || fail "a refused apply left a service behind"

step "apply: the tarball is loaded, two replicas start, health-checked"
hello_manifest v1
ctl apply -f "$T/app/hello.yaml" | tee "$T/out"
grep -q "service/hello created (generation 1)" "$T/out" || fail "apply output"
wait_until 60 "hello generation 1 converged" converged hello 1 2
ctl get services
ctl get instances
for p in $(instance_ports hello); do answers "$p" || fail "instance on port $p does not answer"; done
every_instance_greets hello v1
ctl apply -f "$T/app/hello.yaml" | grep "unchanged (generation 1)" >/dev/null || fail "re-apply is not idempotent"

step "the stock docker CLI sees the node and runs an unmanaged container"
dockercli version >/dev/null
dockercli info >/dev/null
dockercli load -i "$IMAGES/busybox.tar"
dockercli ps | grep hello-0-1 >/dev/null || fail "docker ps does not list hello-0-1"
dockercli run -d --name byhand edgecloud/busybox:test sh -c 'echo from-docker; sleep 300'
wait_until 10 "byhand logs" sh -c "docker -H unix://$SOCK logs byhand | grep -q from-docker"
ctl get instances -o json | json "
b=[i for i in d['instances'] if i['name']=='byhand']
assert b and not b[0]['managed'], d"
dockercli inspect byhand | grep '"Running": true' >/dev/null || fail "docker inspect"
dockercli stop -t 1 byhand >/dev/null
dockercli rm byhand >/dev/null

step "update: a rolling update, one replica at a time"
hello_manifest v2
ctl apply -f "$T/app/hello.yaml" | grep "updated (generation 2)" >/dev/null || fail "update"
wait_until 90 "hello generation 2 converged" converged hello 2 2
every_instance_greets hello v2
ctl events --service hello | grep rollout.finished >/dev/null || fail "no rollout.finished event"

step "rollback: generation 1's manifest comes back as generation 3"
ctl rollback hello
wait_until 90 "hello generation 3 converged" converged hello 3 2
ctl describe hello >"$T/describe"; cat "$T/describe"
ctl get services hello -o json | json "
m=d.get('manifest') or d['services'][0]['manifest']
assert m['spec']['env'][0]['value']=='v1', m"
every_instance_greets hello v1

step "logs"
p=$(instance_ports hello | awk "NR==1")
curl -fsS "http://127.0.0.1:$p/" >/dev/null
wait_until 10 "a log line" sh -c "'$BIN/edgectl' logs hello --tail 20 | grep -q response"

step "a crashed instance is restarted"
cat >"$T/app/worker.yaml" <<YAML
apiVersion: edge/v1
kind: Service
metadata: {name: worker, labels: {io.edgecloud.e2e: "$$"}}
spec:
  image: edgecloud/busybox:test
  command: [sh, -c, "echo worker up; exec sleep 100000"]
  replicas: 2
YAML
ctl apply -f "$T/app/worker.yaml"
wait_until 30 "worker running" service_is worker running
id=$(ctl get instances -o json | json "
print([i['id'] for i in d['instances'] if i['name']=='worker-0-1'][0])")
dockercli kill "$id" >/dev/null
wait_until 30 "worker-0-1 restarted" sh -c "'$BIN/edgectl' get instances -o json | python3 -c \"
import json,sys; d=json.load(sys.stdin)
w=[i for i in d['instances'] if i['name']=='worker-0-1'][0]
assert w['restarts']>=1 and w['state']=='running', w\""

step "exec health checks: run in the container; a failing one restarts, a passing one is ready"
probe_manifest() {  # NAME CHECK-COMMAND
  cat <<YAML
---
apiVersion: edge/v1
kind: Service
metadata: {name: $1, labels: {io.edgecloud.e2e: "$$"}}
spec:
  image: edgecloud/busybox:test
  command: [sh, -c, "echo up >/tmp/up; exec sleep 100000"]
  healthCheck:
    exec: {command: $2}
    interval: 500ms
    timeout: 400ms
    retries: 2
YAML
}
{
  # /tmp/up exists only inside the container: the check must run there to pass.
  probe_manifest probe-ok "[sh, -c, 'test -f /tmp/up']"
  probe_manifest probe-bad "[sh, -c, 'test -f /tmp/never']"
} >"$T/app/probes.yaml"
ctl apply -f "$T/app/probes.yaml"
wait_until 30 "probe-ok ready through its exec check" converged probe-ok 1 1
wait_until 30 "probe-bad unhealthy and restarted" sh -c "'$BIN/edgectl' get instances -o json | python3 -c \"
import json,sys; d=json.load(sys.stdin)
p=[i for i in d['instances'] if i['service']=='probe-bad']
assert p and p[0]['restarts']>=1 and not p[0]['ready'], p\""
ctl events --service probe-bad | grep instance.unhealthy >/dev/null || fail "no instance.unhealthy event for probe-bad"
ctl get instances -o json | json "
p=[i for i in d['instances'] if i['service']=='probe-ok'][0]
assert p['ready'] and p['restarts']==0 and p['health']=='healthy', p"
ctl delete probe-ok
ctl delete probe-bad
wait_until 30 "probe instances removed" sh -c "! '$BIN/edgectl' get instances -q | grep probe"

step "kill -9 of edged in the middle of a rollout: adopted, no duplicates, rollout finishes"
worker_ids=$(instance_ids worker)
# A 3 s health-check interval: each new replica takes that long to be ready, which leaves
# seconds in which generations 3 and 4 both exist.
hello_manifest v4 3s
ctl apply -f "$T/app/hello.yaml" | grep "updated (generation 4)" >/dev/null || fail "update to 4"
wait_until 30 "the middle of the rollout (generations 3 and 4 both present)" mid_rollout hello 3 4
kill -9 "$EDGED_PID"
wait "$EDGED_PID" 2>/dev/null || true
EDGED_PID=
start_edged
wait_until 90 "hello generation 4 converged after kill -9" converged hello 4 2
every_instance_greets hello v4
wait_until 30 "worker converged" converged worker 1 2
[ "$(instance_ids worker)" = "$worker_ids" ] || fail "worker instances were replaced, not adopted"
ctl events | grep instance.adopted >/dev/null || fail "no instance.adopted event"

step "SIGTERM stops edged and leaves the workloads running"
ports=$(instance_ports hello)
stop_edged
for p in $ports; do answers "$p" || fail "instance on $p died with edged"; done

step "reboot without network: every process gone, edged restarts everything from its store"
kill_workloads
for p in $ports; do ! answers "$p" || fail "instance on $p survived the simulated power cut"; done
if [ "$RUNTIME" = light ]; then
  ip netns add "$NETNS"
  ip netns exec "$NETNS" ip link set lo up
  [ "$(ip netns exec "$NETNS" ip -o link | wc -l)" = 1 ] || fail "the offline namespace has links"
  start_edged "$NETNS"
  wait_until 90 "hello back after the reboot" converged hello 4 2
  wait_until 30 "worker back after the reboot" converged worker 1 2
  for p in $(instance_ports hello); do answers "$p" "$NETNS" || fail "hello on $p (offline)"; done
else
  # Docker's containers live in dockerd's network namespace, which edged's health checks
  # must reach: edged restarts beside dockerd, from its store alone.
  start_edged
  wait_until 90 "hello back after the reboot" converged hello 4 2
  wait_until 30 "worker back after the reboot" converged worker 1 2
  for p in $(instance_ports hello); do answers "$p" || fail "hello on $p"; done
fi
ctl get instances

step "delete removes every instance"
ctl delete hello
ctl delete worker
wait_until 60 "instances removed" sh -c "[ \"\$('$BIN/edgectl' get instances -q | wc -l)\" = 0 ]"
ctl get services -q | grep . >/dev/null && fail "services left"

step "a clean stop leaves nothing running behind"
stop_edged
if [ "$RUNTIME" = light ]; then
  pgrep -f "^edge-shim $DATA/" && fail "edge-shim processes outlived the deletion"
else
  [ -z "$(docker ps -aq --filter "label=io.edgecloud.e2e=$$")" ] || fail "containers outlived the deletion"
fi

echo
echo "PASS: edged end to end on the $RUNTIME runtime"
