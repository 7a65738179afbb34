#!/usr/bin/env bash
# The gateway end to end: real edged nodes in network namespaces on one bridge
# (lib/netns_cluster.sh, 198.18.0.0/15 only), services in the light runtime, called the
# way an application calls them: http://127.0.0.1:8083/<base path>/... or the gateway's
# unix socket, from the node's own namespace.
#
#   br1 198.18.0.0/24   A (n1, .11), B (n2, .12), C (n3, .13): edged, one cluster, one
#                       account (acme) and account key file; C also has a global gateway
#                       D (n4, .14): no edged; the "network" caller, the stand-in for the
#                       central API gateway (gateway/upstream.py global) and, in the hub
#                       namespace, a frame capture of the bridge (gateway/gwtool.py sniff)
#
# Services (the hello image's busybox httpd; each answers with the node that served it):
#   A: loc (/loc), lazy (/lazy, on-demand, idle 5 s), bad-garbage/-huge/-silent
#      (/bad/..., python upstreams bound on the instances' ports)
#   B: peer (/peer), dup (/cgi-bin/dup, retries), tok (/cgi-bin/tok, scopes [orders.write])
#   C: dup
#
# Scenarios (each prints SCENARIO N PASS|FAIL):
#   1  local route through 127.0.0.1:8083 and through the unix socket
#   2  peer route A -> B, `edgectl routes` on A shows B, 404 JSON off every route, a
#      global route through C's global gateway
#   3  A's route carries the manifest's retry policy; C killed (kill -9) under 200 GETs
#      from A: all succeed, C leaves A's route (retries and ejections are printed as they
#      happened); POSTs are 200 or a clean 502/503 JSON and none is delivered twice
#   4  on-demand: 10 concurrent first calls all 200, one instance; gone after idleTimeout
#   5  tokens: local and peer calls get a token attached; from the network: none 401,
#      garbage 401, expired 401, other key 401, missing scope 403, right scope 200
#   6  TLS between gateways: a client certificate of another key is refused; the
#      service's bytes between A and B never appear in clear on the bridge
#   7  misbehaving upstreams (garbage, 1 MiB of headers, silence) give 502/504 JSON while
#      other routes keep answering, slowloris clients included
#
# --runtime docker: scenarios 1 and 4 with A's services on the Docker runtime. Docker's
# containers use the host's network, so A's edged runs in this (the root) namespace,
# gateway on a free loopback port, discovery off, and B, C, D are not made.
#
#   tests/integration/gateway_e2e.sh [--runtime light|docker] [--only N[,N...]] [--keep]
#                                    (root; EDGE_BUILD_DIR)
#
# Exit status 1 when a scenario failed, 77 (skipped) when not root, or on Docker when no
# dockerd answers and EDGE_REQUIRE_DOCKER is not 1.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/e2e.sh
. "$HERE/lib/e2e.sh"
GW=$HERE/gateway
RUNTIME=light
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runtime) RUNTIME=${2:-}; shift 2 || shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case $RUNTIME in
  light) e2e_init gateway_e2e 7 "${args[@]}" ;;
  docker)
    e2e_init gateway_e2e_docker 7 "${args[@]}"
    [ "$ONLY" != 1,2,3,4,5,6,7 ] || { ONLY=1,4; SELECTED=(1 4); }
    [[ $ONLY =~ ^[14](,[14])*$ ]] || { echo "gateway_e2e: --runtime docker runs scenarios 1 and 4 only (--only $ONLY)" >&2; exit 2; }
    ;;
  *) echo "gateway_e2e: --runtime '$RUNTIME': allowed light, docker" >&2; exit 2 ;;
esac
e2e_need_root "network namespaces, the light runtime"
e2e_need_bins edged edgectl edge-shim
[ "$RUNTIME" = light ] || e2e_need_docker
if [ ! -f "$BUILD/images/hello.tar" ]; then
  echo "gateway_e2e: $BUILD/images/hello.tar is not built (ninja edge_test_images)" >&2
  exit 2
fi
e2e_need_tools curl python3 openssl nsenter
# The interpreter itself, not a wrapper (pyenv's shims cost a fork of bash per call).
PY=$(python3 -c 'import sys; print(sys.executable)')
if ! "$PY" -c 'import cryptography' 2>/dev/null; then
  echo "gateway_e2e: python3's cryptography module is missing (python3-cryptography)" >&2
  exit 2
fi
e2e_start_cluster

A=1 B=2 C=3 D=4
IP_B=$(nc_addr $B) IP_D=$(nc_addr $D)
GW_PORT=8083  # A's gateway port, as an application on A calls it
if [ "$RUNTIME" = light ]; then
  NODES=("$A" "$B" "$C")
  for i in $A $B $C $D; do nc_add_node $i 1 || exit 2; done
else
  NODES=("$A")
  nc_add_host_node $A || exit 2
  GW_PORT=$("${PY:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
W=$NC_DIR/work
mkdir -p "$W"
TOOL=("$PY" "$GW/gwtool.py")
ACCOUNT_KEY=$NC_DIR/account.key
RAND=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET=svcbody-$RAND          # a response body that must never cross the bridge in clear
HDR_MARK=reqhdr-$RAND         # a request header value, likewise
CTL_MARK=plainctl-$RAND       # sent in clear on purpose: proves the capture sees the link

ERRS=()
bad() { ERRS+=("$*"); log "  FAIL: $*"; }
ok() { log "  ok: $*"; }

result() {  # N TEXT: PASS when the scenario recorded no failure
  local n=$1 i
  if [ ${#ERRS[@]} -eq 0 ]; then
    e2e_record "$n" PASS "$2"
  else
    e2e_record "$n" FAIL "$(printf '%s; ' "${ERRS[@]}")"
    echo "    last log lines of the nodes:"
    for i in "${NODES[@]}"; do
      [ -s "$(nc_dir $i)/edged.log" ] || continue
      grep -v 'level=debug' "$(nc_dir $i)/edged.log" | tail -n 5 | sed "s/^/    n$i: /"
    done
  fi
  ERRS=()
}

# call I URL [curl args...]: an HTTP call from node I's namespace. Sets ST (status,
# 000 when there was no answer), BODY, HDRS (response head), CERR (curl's error).
call() {
  local i=$1 url=$2 f=$W/call
  shift 2
  ST=$(nc_exec "$i" curl -sS -m "${CALL_TIMEOUT:-10}" -D "$f.h" -o "$f.b" -w '%{http_code}' "$@" "$url" 2>"$f.e")
  BODY=$(cat "$f.b" 2>/dev/null)
  HDRS=$(tr -d '\r' <"$f.h" 2>/dev/null)
  CERR=$(cat "$f.e")
  rm -f "$f.h" "$f.b" "$f.e"
}
gw() {  # I PATH [curl args...]: through node I's gateway
  call "$1" "http://127.0.0.1:$([ "$1" = "$A" ] && echo "$GW_PORT" || echo 8083)$2" "${@:3}"
}
said() { echo "$ST $(head -c 200 <<<"$BODY" | tr '\n' ' ')${CERR:+ ($CERR)}"; }

# The gateway's own errors: a JSON object with an "error" string, served as JSON.
json_error() {
  grep -qi '^content-type: *application/json' <<<"$HDRS" &&
    "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert isinstance(d, dict) and isinstance(d.get("error"), str) and d["error"]' "$BODY" 2>/dev/null
}
header() { grep -i "^$1:" <<<"$HDRS" | head -n 1 | cut -d: -f2- | sed 's/^ *//'; }

instances() {  # I SERVICE -> "name state ready port" per instance; fails when edgectl does
  local out
  out=$(nc_edgectl "$1" get instances -o json 2>&1) || { log "  edgectl get instances on n$1 failed: $out" >&2; return 1; }
  "$PY" -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["service"] == sys.argv[1]:
        print(i["name"], i["state"], i["ready"], i["ports"].get("http", "-"))' "$2" <<<"$out"
}
instance_count() {  # I SERVICE -> the number of instances, "?" when they cannot be listed
  local out
  out=$(instances "$1" "$2") || { echo "?"; return 1; }
  grep -c . <<<"$out"
}
ready_count() { instances "$1" "$2" | awk '$2 == "running" && $3 == "True"' | wc -l; }
all_ready() {  # I SERVICE...
  local i=$1 s
  shift
  for s in "$@"; do [ "$(ready_count "$i" "$s")" -ge 1 ] || return 1; done
}
node_id() { nc_json "$1" 2>/dev/null | "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("node_id", ""))' 2>/dev/null; }
routes_text() { nc_edgectl "$1" routes 2>&1; }
route_line() { routes_text "$1" | grep -E "(^|[[:space:]])$2([[:space:]]|$)"; }
route_has() {  # I PATH WORD...: node I's `edgectl routes` line for PATH names every WORD
  local line w
  line=$(route_line "$1" "$2") || return 1
  for w in "${@:3}"; do grep -q -- "$w" <<<"$line" || return 1; done
}
route_known() {  # I PATH: node I's gateway knows where PATH goes (any answer but 404/503)
  gw "$1" "$2"
  [ "$ST" != 000 ] && [ "$ST" != 404 ] && [ "$ST" != 503 ]
}
peer_answers() {  # I PATH NODE: a call through node I's gateway is answered by NODE
  gw "$1" "$2"
  [ "$ST" = 200 ] && grep -q "node=$3" <<<"$BODY"
}

# ------------------------------------------------------------------------ services

cp "$BUILD/images/hello.tar" "$W/hello.tar"

# httpd as the container's PID 1 would ignore SIGTERM (no handler) and every stop would
# wait out the grace period: the shell stays PID 1 and passes it on (as the hello image's
# own command does).
TERM_TRAP="trap 'kill \$!; exit 0' TERM INT; httpd -f -p \$PORT -h /tmp/w & wait"

doc_head() {  # NAME [REPLICAS]
  cat <<EOF
---
apiVersion: edge/v1
kind: Service
metadata: {name: $1, labels: {io.edgecloud.e2e: "$$"}}
spec:
  image: ./hello.tar
  replicas: ${2:-1}
  ports: [{name: http}]
  resources: {memory: 32Mi, pids: 64}
EOF
}

# A static-file service: GET BASE/who answers "node=NODE", BASE/secret answers $SECRET.
who_doc() {  # NAME NODE BASE [extra spec lines...]
  doc_head "$1"
  cat <<EOF
  command: [sh, -c, "mkdir -p /tmp/w$3 && echo node=$2 >/tmp/w$3/who && echo $SECRET >/tmp/w$3/secret; $TERM_TRAP"]
  healthCheck: {tcp: {port: http}, interval: 300ms, timeout: 300ms, retries: 1}
EOF
  printf '%s\n' "${@:4}"
}

# A CGI service at /cgi-bin/NAME: answers "node=NODE method=M body=B auth=<Authorization>"
# (what reached the service), keeps POST bodies, lists them on ?posts.
cgi_doc() {  # NAME NODE [extra spec lines...]
  doc_head "$1"
  cat <<EOF
  env:
    - name: SCRIPT
      value: |
        #!/bin/sh
        echo "Content-Type: text/plain"
        echo
        if [ "\$QUERY_STRING" = posts ]; then cat /tmp/posts 2>/dev/null; exit 0; fi
        body=
        if [ "\$REQUEST_METHOD" = POST ]; then body=\$(head -c "\${CONTENT_LENGTH:-0}"); echo "\$body" >>/tmp/posts; fi
        echo "node=$2 method=\$REQUEST_METHOD body=\$body auth=\${HTTP_AUTHORIZATION:-none}"
  command: [sh, -c, "mkdir -p /tmp/w/cgi-bin && printf '%s\\n' \"\$SCRIPT\" >/tmp/w/cgi-bin/$1 && chmod 755 /tmp/w/cgi-bin/$1; $TERM_TRAP"]
  healthCheck: {tcp: {port: http}, interval: 300ms, timeout: 300ms, retries: 1}
EOF
  printf '%s\n' "${@:3}"
}

# An instance that listens nowhere: a python upstream of scenario 7 takes its port.
idle_doc() {  # NAME BASE
  doc_head "$1"
  cat <<EOF
  command: [sh, -c, "exec sleep 1000000"]
  route:
    basePath: $2
    retry: {attempts: 0, perTryTimeout: 1s, timeout: 2s}
EOF
}

DUP_ROUTE=(
  "  route:"
  "    basePath: /cgi-bin/dup"
  "    retry: {attempts: 3, perTryTimeout: 2s, timeout: 10s, on: [connect-failure, reset, \"503\"], nonIdempotent: false}"
)
{
  who_doc loc n1 /loc "  route: {basePath: /loc}"
  who_doc lazy n1 /lazy "  route: {basePath: /lazy}" "  lifecycle: {mode: on-demand, idleTimeout: 5s}"
  idle_doc bad-garbage /bad/garbage
  idle_doc bad-huge /bad/huge
  idle_doc bad-silent /bad/silent
} >"$W/a.yaml"
{
  who_doc peer n2 /peer "  route: {basePath: /peer}"
  cgi_doc dup n2 "${DUP_ROUTE[@]}"
  cgi_doc tok n2 "  route: {basePath: /cgi-bin/tok, scopes: [orders.write]}"
} >"$W/b.yaml"
cgi_doc dup n3 "${DUP_ROUTE[@]}" >"$W/c.yaml"

# ------------------------------------------------------------------------ nodes

if [ "$RUNTIME" = docker ]; then
  {
    who_doc loc n1 /loc "  route: {basePath: /loc}"
    who_doc lazy n1 /lazy "  route: {basePath: /lazy}" "  lifecycle: {mode: on-demand, idleTimeout: 5s}"
  } >"$W/a.yaml"
  nc_config $A runtime docker
  nc_config $A discovery false
  # edged on Docker removes the managed containers it does not want: its services are
  # deleted before it stops, and what a crash left is removed by label.
  docker_cleanup() {
    if nc_running $A; then
      nc_edgectl $A delete loc >/dev/null 2>&1
      nc_edgectl $A delete lazy >/dev/null 2>&1
      wait_for 30 eval '[ -z "$(nc_edgectl $A get instances -q 2>/dev/null)" ]'
    fi
    docker ps -aq --filter "label=io.edgecloud.e2e=$$" | xargs -r docker rm -f >/dev/null 2>&1
  }
  E2E_CLEANUP+=(docker_cleanup)
fi

# One account key file for the three nodes (the operator copies it like a cluster key).
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ACCOUNT_KEY" 2>/dev/null) ||
  { echo "gateway_e2e: openssl genpkey failed" >&2; exit 2; }

[ "$RUNTIME" = docker ] || nc_spawn $D "$W/global.log" "$PY" "$GW/upstream.py" global 0.0.0.0:9000
for i in "${NODES[@]}"; do
  nc_config $i listen "$([ "$RUNTIME" = docker ] && echo "127.0.0.1:$GW_PORT" || echo 0.0.0.0:8083)"
  nc_config $i gateway_socket "$(nc_dir $i)/gateway.sock"
  nc_config $i account_id acme
  nc_config $i account_key_file "$ACCOUNT_KEY"
done
[ "$RUNTIME" = docker ] || nc_config $C global_gateway "http://$IP_D:9000"
log "starting edged on ${NODES[*]/#/n} ($RUNTIME runtime)"
for i in "${NODES[@]}"; do nc_start $i; done
SETUP_ERR=
for i in "${NODES[@]}"; do
  # An edged that refuses its config exits at once: no point waiting 30 s for it.
  wait_for 30 eval "nc_healthy $i || ! nc_running $i"
  if ! nc_running $i; then
    SETUP_ERR+="n$i's edged exited: $(grep -v '^---' "$(nc_dir $i)/edged.log" | tail -n 3 | cut -c1-300 | tr '\n' ' '); "
  elif ! nc_healthy $i; then
    SETUP_ERR+="n$i's API did not answer within 30 s; "
  fi
done
if [ -z "$SETUP_ERR" ]; then
  log "applying the services"
  apply=("$A:a" "$B:b" "$C:c")
  [ "$RUNTIME" = light ] || apply=("$A:a")
  for f in "${apply[@]}"; do
    if ! nc_edgectl "${f%%:*}" apply -f "$W/${f#*:}.yaml" >"$W/apply.$f.out" 2>&1; then
      SETUP_ERR+="apply on n${f%%:*} failed: $(tr '\n' ' ' <"$W/apply.$f.out"); "
    fi
  done
  if [ "$RUNTIME" = docker ]; then
    wait_for 60 all_ready $A loc || SETUP_ERR+="A's services not ready in 60 s; "
  else
    wait_for 60 all_ready $A loc bad-garbage bad-huge bad-silent || SETUP_ERR+="A's services not ready in 60 s; "
    wait_for 60 all_ready $B peer dup tok || SETUP_ERR+="B's services not ready in 60 s; "
    wait_for 60 all_ready $C dup || SETUP_ERR+="C's services not ready in 60 s; "
  fi
fi
if [ -n "$SETUP_ERR" ]; then
  log "set-up failed: $SETUP_ERR"
  for i in "${NODES[@]}"; do tail -n 15 "$(nc_dir $i)/edged.log" | sed "s/^/    n$i: /"; done
fi
log "set-up done after $((($(now_ms) - E2E_T0_MS) / 1000)) s"
ID_B="" ID_C=""
if [ "$RUNTIME" = light ]; then
  ID_B=$(node_id $B)
  ID_C=$(node_id $C)
fi

# ------------------------------------------------------------------------ scenarios

scenario_1() {
  log "1: local route through port $GW_PORT and the unix socket ($RUNTIME runtime)"
  # The route table follows the reconciler: give it a moment after the set-up.
  wait_for 10 peer_answers $A /loc/who n1
  [ "$ST" = 200 ] && [ "$BODY" = node=n1 ] && ok "127.0.0.1:$GW_PORT/loc/who: $(said)" ||
    bad "127.0.0.1:$GW_PORT/loc/who on A: $(said), want 200 node=n1"
  call $A http://gateway/loc/who --unix-socket "$(nc_dir $A)/gateway.sock"
  [ "$ST" = 200 ] && [ "$BODY" = node=n1 ] && ok "unix socket /loc/who: $(said)" ||
    bad "unix socket $(nc_dir $A)/gateway.sock /loc/who: $(said), want 200 node=n1"
  result 1 "A's local service ($RUNTIME) answers through 127.0.0.1:$GW_PORT and through the unix socket"
}

scenario_2() {
  log "2: peer route, route table, 404, global route"
  if wait_for 20 peer_answers $A /peer/who n2; then
    ok "A -> /peer/who served by B: $(said)"
  else
    bad "A's gateway does not get /peer/who to B within 20 s: last $(said)"
  fi
  local where
  if route_has $A /peer n2 || { [ -n "$ID_B" ] && route_has $A /peer "${ID_B:0:8}"; }; then
    ok "edgectl routes on A: $(route_line $A /peer)"
  else
    bad "edgectl routes on A has no /peer line naming n2 or B's id ${ID_B:-(unknown)}: $(routes_text $A | head -n 12 | tr '\n' '|')"
  fi
  where=$(nc_api $A /api/v1/routes 2>&1)
  grep -q '"path":"/peer"' <<<"$where" || bad "GET /api/v1/routes on A does not list /peer: $(head -c 300 <<<"$where")"
  gw $A /nowhere/at/all
  if [ "$ST" = 404 ] && json_error; then
    ok "a path off every route: $(said)"
  else
    bad "/nowhere/at/all through A: $(said), want 404 with a JSON error"
  fi
  gw $C "/elsewhere/thing?q=1"
  if [ "$ST" = 200 ] && [ "$BODY" = "global GET /elsewhere/thing?q=1" ]; then
    ok "C -> a route not in the cluster goes to its global gateway: $(said)"
  else
    bad "/elsewhere/thing through C (global_gateway http://$IP_D:9000): $(said), want 200 'global GET /elsewhere/thing?q=1'"
  fi
  result 2 "A reaches B's service, lists it with B, 404 JSON off the routes, C's global route answers"
}

metric_sum() {  # I REGEX: sum of node I's edge_gateway_* samples whose name matches REGEX
  nc_api "$1" /metrics 2>/dev/null | awk -v re="$2" '
    /^edge_gateway_/ { name = $1; sub(/\{.*/, "", name); if (name ~ re) s += $NF }
    END { printf "%d", s }'
}

scenario_3() {
  log "3: a peer dying mid-traffic"
  local seen="" tries=0
  # Both replicas must be in use first, or killing C proves nothing.
  while [[ $seen != *n2* || $seen != *n3* ]] && ((tries < 8)); do
    nc_exec $A "${TOOL[@]}" loop http://127.0.0.1:8083/cgi-bin/dup --count 10 --seconds 0.5 >"$W/s3.warm"
    seen+=$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["nodes"]))' "$W/s3.warm" 2>/dev/null)
    tries=$((tries + 1))
    [[ $seen == *n2* && $seen == *n3* ]] || sleep 1
  done
  if [[ $seen != *n2* || $seen != *n3* ]]; then
    bad "A's calls to /cgi-bin/dup are not spread over B and C (served by: ${seen:-nobody}; last: $(head -c 300 "$W/s3.warm"))"
    result 3 ""
    return
  fi
  ok "before: /cgi-bin/dup served by B and C"
  local policy
  policy=$(nc_api $A /api/v1/routes 2>&1 | "$PY" -c '
import json, sys
for r in json.load(sys.stdin)["routes"]:
    if r["path"] == "/cgi-bin/dup":
        print(json.dumps(r.get("retry"), sort_keys=True))' 2>&1)
  log "  A's retry policy for /cgi-bin/dup: $policy"
  if ! "$PY" -c '
import json, sys
p = json.loads(sys.argv[1])
on = p["on"] if isinstance(p["on"], list) else p["on"].split(",")
assert p["attempts"] == 3 and sorted(on) == ["503", "connect-failure", "reset"], p
assert p["per_try_timeout_ms"] == 2000 and p["timeout_ms"] == 10000 and p["non_idempotent"] is False, p' "$policy" 2>/dev/null; then
    bad "A's route /cgi-bin/dup (on B and C) does not carry the manifest's retry policy {attempts: 3, perTryTimeout: 2s, timeout: 10s, on: [connect-failure, reset, 503]}: $policy"
  fi
  # Each replica keeps the POST bodies it received; read straight from the instances
  # (C's keeps running after its edged dies), so a POST delivered twice shows.
  local port_b port_c
  port_b=$(instances $B dup | awk '{print $4; exit}')
  port_c=$(instances $C dup | awk '{print $4; exit}')
  local retries0 ejections0
  retries0=$(metric_sum $A 'retr')
  ejections0=$(metric_sum $A 'eject')
  nc_exec $A "${TOOL[@]}" loop http://127.0.0.1:8083/cgi-bin/dup --count 200 --seconds 5 --post-every 20 >"$W/s3.loop" &
  local loop=$!
  sleep 1.5
  log "  kill -9 of C's edged"
  nc_kill9 $C
  wait $loop
  "$PY" - "$W/s3.loop" >"$W/s3.verdict" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
errs = []
get_bad = {k: v for k, v in d["GET"].items() if k != "200"}
if get_bad:
    errs.append("GETs not 200: %s (e.g. %s)" % (get_bad, [f for f in d["failures"] if f["method"] == "GET"][:2]))
for f in d["failures"]:
    if f["method"] != "POST":
        continue
    clean = f["status"] in (502, 503) and "json" in f["content_type"]
    try:
        clean = clean and bool(json.loads(f["body"]).get("error"))
    except ValueError:
        clean = False
    if not clean:
        errs.append("POST %d: %s %r (want 200, or 502/503 with a JSON error)" % (f["i"], f["status"], f["body"][:120]))
print("GET %s POST %s served by %s in %ss" % (d["GET"], d["POST"], d["nodes"], d["seconds"]))
for e in errs:
    print("ERR " + e)
EOF
  local line
  while IFS= read -r line; do
    case $line in
      ERR\ *) bad "${line#ERR }" ;;
      *) ok "$line" ;;
    esac
  done <"$W/s3.verdict"
  [ -s "$W/s3.verdict" ] || bad "the client loop gave no result: $(head -c 300 "$W/s3.loop")"
  local posts_b posts_c twice sent
  # A record that cannot be fetched proves nothing: that is a failure, not "none twice".
  if ! [[ $port_b =~ ^[0-9]+$ && $port_c =~ ^[0-9]+$ ]]; then
    bad "no port for dup's instances on B ('$port_b') and C ('$port_c'): cannot read the POSTs they received"
  elif ! posts_b=$(nc_exec $B curl -fsS -m 5 "http://127.0.0.1:$port_b/cgi-bin/dup?posts" 2>&1) ||
    ! posts_c=$(nc_exec $C curl -fsS -m 5 "http://127.0.0.1:$port_c/cgi-bin/dup?posts" 2>&1); then
    bad "cannot read the POSTs dup's instances received: B: $(head -c 200 <<<"$posts_b") C: $(head -c 200 <<<"${posts_c:-}")"
  fi
  twice=$(printf '%s\n%s\n' "$posts_b" "$posts_c" | grep '^post-' | sort | uniq -d | tr '\n' ' ')
  # Every POST answered 200 reached one of them.
  sent=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["POST"].get("200", 0))' "$W/s3.loop" 2>/dev/null)
  local got
  got=$(printf '%s\n%s\n' "$posts_b" "$posts_c" | grep -c '^post-')
  if [ -n "$twice" ]; then
    bad "POSTs delivered twice (to B and to C, or twice to one): $twice"
  elif ! [[ $sent =~ ^[0-9]+$ ]] || ((sent == 0 || got < sent)); then
    bad "the replicas recorded $got POSTs, the caller had ${sent:-no count of} POSTs answered 200 (want at least one, each recorded)"
  else
    ok "no POST delivered twice, each of the $sent answered 200 recorded (B got $(grep -c '^post-' <<<"$posts_b"), C got $(grep -c '^post-' <<<"$posts_c"))"
  fi
  local retries ejections c_line
  retries=$(metric_sum $A 'retr')
  ejections=$(metric_sum $A 'eject')
  nc_api $A /metrics 2>/dev/null | grep -E '^edge_gateway_[a-z_]*(retr|eject)' | grep -v ' 0$' | sed 's/^/    /'
  grep -c 'route=dup.*tries=[2-9]' "$(nc_dir $A)/edged.log" | sed 's/^/    requests to dup that took more than one try: /'
  # kill -9 closes C's sessions, so discovery usually drops C from A's route within tens
  # of milliseconds: the requests caught in that window are retried (and an ejection
  # needs 5 failures in a row). What must hold: nothing reached the caller, and C leaves
  # the route.
  c_line=$(route_line $A /cgi-bin/dup)
  if [ -z "$ID_C" ] || grep -q "${ID_C:0:8}" <<<"$c_line"; then
    bad "C (${ID_C:-id unknown}) is still on A's route after its death: $c_line"
  else
    ok "C left A's route: $c_line; retries $retries0 -> $retries, ejections $ejections0 -> $ejections"
  fi
  result 3 "C killed under load: every GET answered, no POST twice or unclean, C off the route"
}

scenario_4() {
  log "4: on-demand start ($RUNTIME runtime)"
  local n
  n=$(instance_count $A lazy)
  [ "$n" = 0 ] || bad "before the first call lazy has $n instance(s), want none"
  nc_exec $A "${TOOL[@]}" burst "http://127.0.0.1:$GW_PORT/lazy/who" --count 10 >"$W/s4.burst"
  local t_last
  t_last=$(now_ms)  # the burst's calls have all ended
  "$PY" - "$W/s4.burst" >"$W/s4.verdict" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
good = [r for r in d if r["status"] == 200 and r["body"] == "node=n1"]
times = "slowest %.2fs, fastest %.2fs" % (max(r["seconds"] for r in d), min(r["seconds"] for r in d))
if len(good) == len(d):
    print("%d/%d first calls answered 200 node=n1, %s" % (len(good), len(d), times))
else:
    seen = {}
    for r in d:
        if r not in good:
            seen.setdefault("%s %s" % (r["status"], r["body"][:120]), 0)
            seen["%s %s" % (r["status"], r["body"][:120])] += 1
    print("ERR %d/%d first calls not answered 200 node=n1 (%s): %s" % (
        len(d) - len(good), len(d), times, "; ".join("%dx %s" % (n, k) for k, n in seen.items())))
EOF
  local line
  while IFS= read -r line; do
    case $line in ERR\ *) bad "${line#ERR }" ;; *) ok "$line" ;; esac
  done <"$W/s4.verdict"
  n=$(instance_count $A lazy)
  [ "$n" = 1 ] && ok "one instance after the burst" || bad "after 10 concurrent first calls lazy has $n instance(s), want 1: $(instances $A lazy | tr '\n' '|')"
  local created
  created=$(nc_api $A "/api/v1/events?service=lazy" 2>/dev/null | grep -c '"type":"instance.created"')
  [ "$created" = 1 ] || bad "events show $created instance.created for lazy, want 1"
  if [ "$n" -ge 1 ]; then
    wait_for 15 eval '[ "$(instance_count $A lazy)" = 0 ]'
    local gone_ms=$(($(now_ms) - t_last))
    n=$(instance_count $A lazy)
    # Not before idleTimeout (5 s) has passed since the last call (less the time the
    # burst tool took to exit after it, up to a few hundred ms on a loaded machine);
    # within it plus the idle check's period, the stop and the 0.2 s poll.
    if [ "$n" != 0 ]; then
      bad "lazy still has $n instance(s) 15 s after its last call (idleTimeout 5s): $(instances $A lazy | tr '\n' '|')"
    elif ((gone_ms < 4500 || gone_ms > 7500)); then
      bad "lazy was gone ${gone_ms} ms after its last call, want 4500..7500 ms (idleTimeout 5s)"
    else
      ok "lazy stopped ${gone_ms} ms after its last call (idleTimeout 5s)"
    fi
  fi
  result 4 "10 concurrent first calls answered by one started instance, stopped when idle"
}

scenario_5() {
  log "5: tokens"
  local path=/cgi-bin/tok url="http://$IP_B:8083/cgi-bin/tok" token=""
  gw $B $path
  if [ "$ST" = 200 ] && grep -q 'auth=Bearer ' <<<"$BODY"; then
    token=$(sed -n 's/.*auth=Bearer \([^ ]*\).*/\1/p' <<<"$BODY")
    ok "B's local app -> tok: token attached"
  else
    bad "a local app on B calling $path: $(said), want 200 with a Bearer token reaching the service"
  fi
  wait_for 15 route_known $A $path
  if [ "$ST" = 200 ] && grep -q 'auth=Bearer ' <<<"$BODY"; then
    token=$(sed -n 's/.*auth=Bearer \([^ ]*\).*/\1/p' <<<"$BODY")
    ok "A's app -> tok on B: token attached by A, accepted by B"
  else
    bad "an app on A calling $path (on B, scopes [orders.write]): $(said), want 200 with a Bearer token; A's route: $(route_line $A $path)"
  fi
  call $D "$url"
  if [ "$ST" = 401 ] && json_error && [ -n "$(header WWW-Authenticate)" ]; then
    ok "no token from the network: $(said) WWW-Authenticate: $(header WWW-Authenticate)"
  else
    bad "no token from the network: $(said) WWW-Authenticate '$(header WWW-Authenticate)', want 401 JSON with WWW-Authenticate"
  fi
  call $D "$url" -H 'Authorization: Bearer garbage.not-a.token'
  [ "$ST" = 401 ] && json_error && ok "garbage token: $(said)" || bad "garbage token: $(said), want 401 JSON"
  if [ -z "$token" ]; then
    bad "no token reached the service: cannot forge the 403/expired/other-key cases"
    result 5 ""
    return
  fi
  "${TOOL[@]}" jwt-show "$token" >"$W/s5.claims" 2>&1
  log "  a token the gateway attached: $(head -c 400 "$W/s5.claims")"
  local t
  t=$("${TOOL[@]}" jwt-resign "$ACCOUNT_KEY" "$token" --set scope=orders.write)
  call $D "$url" -H "Authorization: Bearer $t"
  [ "$ST" = 200 ] && ok "account-signed token with orders.write from the network: 200" ||
    bad "a valid account token with scope orders.write from the network: $(said), want 200"
  t=$("${TOOL[@]}" jwt-resign "$ACCOUNT_KEY" "$token" --set scope=orders.read)
  call $D "$url" -H "Authorization: Bearer $t"
  [ "$ST" = 403 ] && json_error && ok "token without the scope: $(said)" ||
    bad "token with scope orders.read only: $(said), want 403 JSON"
  t=$("${TOOL[@]}" jwt-resign "$ACCOUNT_KEY" "$token" --set scope=orders.write --exp-offset -120)
  call $D "$url" -H "Authorization: Bearer $t"
  [ "$ST" = 401 ] && json_error && ok "expired token: $(said)" || bad "expired token: $(said), want 401 JSON"
  t=$("${TOOL[@]}" jwt-resign "$ACCOUNT_KEY" "$token" --set scope=orders.write --fresh-key)
  call $D "$url" -H "Authorization: Bearer $t"
  [ "$ST" = 401 ] && json_error && ok "token signed by another key: $(said)" ||
    bad "token signed by another key: $(said), want 401 JSON"
  result 5 "tokens attached for apps, every bad token refused with 401/403 JSON before the service"
}

scenario_6() {
  log "6: TLS between gateways"
  local d=$W/tls
  mkdir -p "$d"
  openssl req -x509 -newkey ed25519 -nodes -keyout "$d/rogue.key" -out "$d/rogue.crt" \
    -subj "/CN=$RAND" -days 1 2>/dev/null || bad "openssl could not make an Ed25519 certificate"
  local req="GET /peer/secret HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n" how
  for how in rogue-cert no-cert; do
    local args=(-connect "$IP_B:8083" -tls1_3 -ign_eof)
    [ $how = rogue-cert ] && args+=(-cert "$d/rogue.crt" -key "$d/rogue.key")
    # shellcheck disable=SC2059  # the request's \r\n are for printf
    printf "$req" | nc_exec $D timeout 8 openssl s_client "${args[@]}" >"$d/$how.out" 2>"$d/$how.err"
    local status server
    status=$(grep -a -m1 '^HTTP/1\.[01] ' "$d/$how.out" | tr -d '\r')
    # TLS 1.3: the client sees the server's certificate before the server judges the
    # client's, so this shows B spoke TLS on 8083 before refusing.
    server=$(grep -a -m1 '^subject=' "$d/$how.out")
    if grep -q "$SECRET" "$d/$how.out" || [[ $status == HTTP/1.1\ 2* ]]; then
      bad "TLS to B:8083 with $how: B answered '$status' and served the service"
    elif [ -z "$server" ]; then
      bad "TLS to B:8083 ($how): B presented no certificate (no TLS on 8083?): $(grep -a -m1 -iE 'alert|error' "$d/$how.err" | head -c 160)"
    elif [ -z "$status" ]; then
      ok "$how: B ($server) refused the handshake: $(grep -a -m1 -i alert "$d/$how.err" | head -c 160)"
    elif [[ $status =~ ^HTTP/1\.1\ (401|403) ]]; then
      ok "$how: B ($server) answered $status"
    else
      bad "TLS to B:8083 with $how: '$status', want the handshake refused (or 401/403)"
    fi
  done

  # The bridge, seen from the hub: the frames every port carries.
  # Not through nc_hub (a function: $! would be a subshell, and TERM must reach python).
  nsenter --net="/run/netns/$NC_HUB" "${TOOL[@]}" sniff "$d/capture" >"$d/sniff.log" 2>&1 &
  local sniffer=$!
  wait_for 5 grep -qs sniffing "$d/sniff.log" || bad "the capture did not start: $(cat "$d/sniff.log")"
  local okcalls=0
  for _ in 1 2 3 4 5; do
    gw $A /peer/secret -H "X-Marker: $HDR_MARK"
    [ "$ST" = 200 ] && [ "$BODY" = "$SECRET" ] && okcalls=$((okcalls + 1))
  done
  ((okcalls == 5)) && ok "A -> /peer/secret on B: 5/5 answered" || bad "A -> /peer/secret on B: $okcalls/5 answered (last $(said))"
  call $D "http://$IP_B:8083/peer/who?$CTL_MARK"
  kill -TERM $sniffer 2>/dev/null
  wait $sniffer 2>/dev/null
  local found
  found=$("${TOOL[@]}" find "$d/capture" "$SECRET" "$HDR_MARK" "$CTL_MARK" 2>&1)
  local pair
  pair=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["tcp8083_bytes"].get(sys.argv[2] + "-" + sys.argv[3], 0), d["frames"])' \
    "$d/capture.json" "$(nc_addr $A)" "$IP_B" 2>/dev/null)
  log "  capture: A<->B:8083 bytes and frames: ${pair:-?}; markers: $found"
  if ((okcalls == 0)); then
    bad "no call from A to B succeeded: nothing to look for on the bridge"
  elif ! grep -q "\"$CTL_MARK\": true" <<<"$found"; then
    bad "the capture did not see a request sent in clear on the bridge (capture broken?): $found"
  elif [ "${pair%% *}" = "" ] || [ "${pair%% *}" -lt 1000 ]; then
    bad "the capture saw no A<->B traffic on port 8083 (${pair:-none}): the calls did not cross the bridge?"
  elif grep -q "\"$SECRET\": true\|\"$HDR_MARK\": true" <<<"$found"; then
    bad "service bytes crossed the bridge in clear: $found"
  else
    ok "the service's body and the request header crossed the bridge encrypted"
  fi
  result 6 "a foreign client certificate is refused; A<->B traffic is encrypted on the wire"
}

scenario_7() {
  log "7: misbehaving upstreams"
  local s port
  for s in garbage huge silent; do
    port=$(instances $A bad-$s | awk '{print $4; exit}')
    if ! [[ $port =~ ^[0-9]+$ ]]; then
      bad "no port for bad-$s's instance ($(instances $A bad-$s))"
      continue
    fi
    nc_spawn $A "$W/up-$s.log" "$PY" "$GW/upstream.py" $s "0.0.0.0:$port"
    wait_for 15 grep -qs listening "$W/up-$s.log" || bad "upstream $s did not listen on $port: $(cat "$W/up-$s.log")"
  done
  # Load on the side: 10 calls stuck on the silent upstream, 20 slowloris clients, and
  # a steady good route that must keep answering throughout.
  nc_exec $A "${TOOL[@]}" burst http://127.0.0.1:8083/bad/silent/x --count 10 --timeout 20 >"$W/s7.silent" &
  local silent=$!
  nc_exec $A "${TOOL[@]}" slowloris 127.0.0.1:8083 --conns 20 --seconds 12 >"$W/s7.slow" 2>&1 &
  local slow=$!
  nc_exec $A "${TOOL[@]}" loop http://127.0.0.1:8083/loc/who --count 40 --seconds 4 >"$W/s7.good" &
  local good=$!
  gw $A /bad/garbage/x
  [ "$ST" = 502 ] && json_error && ok "garbage upstream: $(said)" || bad "garbage upstream: $(said), want 502 JSON"
  gw $A /bad/huge/x
  [ "$ST" = 502 ] && json_error && ok "1 MiB of headers: $(said)" || bad "upstream with 1 MiB of headers: $(said), want 502 JSON"
  local t0 took
  t0=$(now_ms)
  CALL_TIMEOUT=15 gw $A /bad/silent/y
  took=$(($(now_ms) - t0))
  # One try (attempts 0) that perTryTimeout (1 s) ends; the call's timeout is 2 s.
  if [ "$ST" = 504 ] && json_error && ((took >= 950 && took <= 2300)); then ok "silent upstream: $(said) after $took ms"; else
    bad "silent upstream (perTryTimeout 1s, timeout 2s): $(said) after $took ms, want 504 JSON after 950..2300 ms"
  fi
  wait $silent $slow $good
  local v
  v=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
st = sorted({r["status"] for r in d})
print("ok" if st == [504] else "silent burst statuses %s" % st)' "$W/s7.silent" 2>&1)
  [ "$v" = ok ] && ok "10 concurrent calls to the silent upstream: all 504" || bad "$v"
  v=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("ok" if set(d["GET"]) == {"200"} else "good route during the abuse: %s %s" % (d["GET"], d["failures"][:2]))' "$W/s7.good" 2>&1)
  [ "$v" = ok ] && ok "/loc/who answered 40/40 meanwhile" || bad "$v"
  # The gateway's header timeout (10 s from a head's first byte) closes every dribbling
  # connection (408) before the 12 s the clients keep trying.
  v=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("ok" if d["conns"] == 20 and d["closed_by_server"] == 20 else "slowloris: the gateway closed %d of %d dribbling connections within 12 s, want all (header timeout 10 s)" % (d["closed_by_server"], d["conns"]))' "$W/s7.slow" 2>&1)
  [ "$v" = ok ] && ok "slowloris: $(cat "$W/s7.slow")" || bad "$v $(head -c 300 "$W/s7.slow")"
  nc_running $A || bad "A's edged died"
  gw $A /loc/who
  [ "$ST" = 200 ] && ok "after: /loc/who $(said)" || bad "after the abuse /loc/who: $(said)"
  result 7 "bad upstreams get 502/504 JSON, the gateway keeps serving other routes"
}

# ------------------------------------------------------------------------ run

for n in "${SELECTED[@]}"; do
  if ! nc_running $A || { [ "$RUNTIME" = light ] && ! nc_running $B; }; then
    e2e_record "$n" FAIL "not run, the nodes are down (set-up: ${SETUP_ERR:-?})"
    continue
  fi
  "scenario_$n"
done

e2e_summary "${SETUP_ERR:+set-up: $SETUP_ERR}"
