#!/usr/bin/env bash
# edge-backend on real networks: two links (bridges), one of them behind NAT (a router
# namespace with iptables masquerade), edge-backend in a namespace of its own, edged
# nodes of one account in each network (lib/netns_cluster.sh, 198.18.0.0/15 only).
#
#   br1 198.18.0.0/24  public side: node A (n1, .11), the backend (n4, .14), router (n3, .13)
#   br2 198.18.1.0/24  behind NAT: node B (n2, .12, default route via the router .1.13)
#   br3 198.18.2.0/24  node C (n5) of another account, the backend (n4, .2.14)
#
# Scenarios:
#   1  nat      A and B register with a join token, find each other by account scope
#               (and proximity), the backend reaches A but not B (B then holds a SEP);
#               A calls B through SEP/BEP relays, B calls A directly; a node of another
#               account cannot find or reach them; relay calls without a token get 401
#   2  restart  kill -9 of the backend and a restart on the same store: nothing lost
#               (accounts, credentials, registrations, keys), calls work again
#   3  etcd     two backend replicas on one etcd: nodes registered through one are found
#               through the other, and a relayed call crosses replicas
#
#   tests/integration/backend_e2e.sh [--only N[,N...]] [--keep]   (root; EDGE_BUILD_DIR)
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/e2e.sh
. "$HERE/lib/e2e.sh"
e2e_init backend_e2e 3 "$@"
e2e_need_root "network namespaces, iptables"
e2e_need_bins edged edgectl edge-backend
e2e_need_tools iptables curl python3
[[ ,$ONLY, != *,3,* ]] || e2e_need_tools etcd
e2e_start_cluster

A=1 B=2 R=3 BK=4 C=5
BK_IP=198.18.0.14 BK_IP3=198.18.2.14
ETCD_PID=
stop_etcd() { [ -z "$ETCD_PID" ] || kill -9 "$ETCD_PID" 2>/dev/null; }
E2E_CLEANUP+=(stop_etcd)

nc_add_node $A 1 || exit 2
nc_add_node $B 2 || exit 2
nc_add_node $R 1 2 || exit 2
nc_add_node $BK 1 3 || exit 2
nc_add_node $C 3 || exit 2

# The router: B's network reaches out through it, masqueraded; nothing reaches in.
nc_exec $R sysctl -qw net.ipv4.ip_forward=1
nc_exec $R iptables -t nat -A POSTROUTING -s 198.18.1.0/24 -o eth0 -j MASQUERADE
nc_exec $R iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
nc_exec $R iptables -A FORWARD -i eth1 -o eth0 -j ACCEPT
nc_exec $R iptables -P FORWARD DROP
nc_exec $B ip route add default via 198.18.1.13

fail() { log "FAIL: $*"; return 1; }

BK_DIR=$NC_DIR/backend
mkdir -p "$BK_DIR"
head -c 24 /dev/urandom | base64 | tr -d '\n/+=' >"$BK_DIR/admin-secret"
ADMIN_SECRET=$(cat "$BK_DIR/admin-secret")
BK_PID=

start_backend() {  # [extra args...]
  nc_spawn $BK "$BK_DIR/backend.log" "$NC_BIN/edge-backend" --listen 0.0.0.0:8080 \
    --relay-listen 0.0.0.0:8085 --relay-advertise $BK_IP:8085 --issuer http://$BK_IP:8080 \
    --data-dir "$BK_DIR/data" --admin-secret-file "$BK_DIR/admin-secret" \
    --instance-id bk1 --location 48.85,2.35 "$@"
  BK_PID=$NC_SPAWN_PID
  local t
  for t in $(seq 100); do
    nc_exec $BK curl -fsS -m 1 http://$BK_IP:8080/healthz >/dev/null 2>&1 && return 0
    kill -0 "$BK_PID" 2>/dev/null || { cat "$BK_DIR/backend.log"; return 1; }
    sleep 0.1
  done
  cat "$BK_DIR/backend.log"
  return 1
}

# bk METHOD PATH [JSON] [TOKEN]: a call to the backend from its own namespace.
bk() {
  local method=$1 path=$2 body=${3:-} token=${4:-$ADMIN_TOKEN} args=()
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  nc_exec $BK curl -sS -m 5 -X "$method" "${args[@]}" "http://$BK_IP:8080$path"
}
admin_token() {
  nc_exec $BK curl -sS -m 5 -d grant_type=client_credentials -d client_id=admin \
    --data-urlencode "client_secret=$ADMIN_SECRET" -d scope=admin \
    http://$BK_IP:8080/oauth2/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
join_token() {  # ACCOUNT -> a join token on stdout
  bk POST "/v1/accounts/$1/join-tokens" '{"ttl_seconds": 3600, "max_uses": 10}' |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("token") or d.get("join_token"))'
}
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_node() {  # I BACKEND_URL TOKEN_FILE LOCATION
  local i=$1
  nc_config "$i" backend "$2"
  nc_config "$i" backend_join_token_file "$3"
  nc_config "$i" location "$4"
  nc_start "$i"
}
node_state() { nc_api "$1" /api/v1/cluster | jq_ 'json.dumps(d.get("backend", {}))'; }
wait_or_fail() {  # SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  wait_for "$limit" "$@" >/dev/null 2>&1 || fail "$what: not within ${limit}s"
}
reachability() {  # I -> true|false|None
  nc_api "$1" /api/v1/cluster | jq_ 'd.get("backend", {}).get("reachable")'
}
is_reachable() { [ "$(reachability "$1")" = "$2" ]; }
node_id() {  # I -> the node's id; fails unless it is one
  local id
  id=$(nc_api "$1" /api/v1/cluster 2>/dev/null | jq_ 'd["node_id"]' 2>/dev/null)
  [[ $id =~ ^[0-9a-f]{16}$ ]] || { fail "node $1 has no node id ('$id')"; return 1; }
  echo "$id"
}
account_count() {  # I -> number of nodes the account scope shows from node I
  nc_edgectl "$1" nodes --scope account -o json | jq_ 'd["count"]'
}
has_count() { [ "$(account_count "$1")" = "$2" ]; }
call_answers() {  # I TARGET: the target's API answers with its own id
  [ -n "$2" ] && nc_edgectl "$1" call "$2" /api/v1/node 2>/dev/null | grep -q "\"$2\""
}
sep_held() { nc_api "$1" /api/v1/cluster | jq_ 'd["backend"].get("relay", {}).get("sep", {}).get("connected", False)' | grep -q True; }

setup_accounts() {
  ADMIN_TOKEN=$(admin_token) || return 1
  [ -n "$ADMIN_TOKEN" ] || return 1
  bk POST /v1/accounts '{"id": "acme"}' >/dev/null
  bk POST /v1/accounts '{"id": "other"}' >/dev/null
  join_token acme >"$NC_DIR/acme.join" || return 1
  join_token other >"$NC_DIR/other.join" || return 1
  grep -q . "$NC_DIR/acme.join" || return 1
}

scenario_nat() {
  start_backend || return 1
  setup_accounts || fail "accounts and join tokens" || return 1
  start_node $A http://$BK_IP:8080 "$NC_DIR/acme.join" 48.85,2.35
  start_node $B http://$BK_IP:8080 "$NC_DIR/acme.join" 45.76,4.84
  start_node $C http://$BK_IP3:8080 "$NC_DIR/other.join" 43.30,5.37
  nc_wait 20 nc_healthy $A && nc_wait 20 nc_healthy $B && nc_wait 20 nc_healthy $C || fail "nodes did not start" || return 1
  ID_A=$(node_id $A) && ID_B=$(node_id $B) && ID_C=$(node_id $C) || return 1
  log "A=$ID_A B=$ID_B C=$ID_C"
  wait_or_fail 20 "A reachable" is_reachable $A True || return 1
  wait_or_fail 20 "B unreachable (behind NAT)" is_reachable $B False || return 1
  log "backend: A reachable directly, B not (NAT): $(node_state $B)"
  wait_or_fail 20 "account scope lists A and B from A" has_count $A 2 || return 1
  wait_or_fail 20 "account scope lists A and B from B" has_count $B 2 || return 1
  has_count $C 1 || fail "node C of another account sees $(account_count $C) nodes" || return 1
  # Proximity: Lyon is ~390 km from Paris; a 100 km radius around Paris has A only.
  local near
  near=$(nc_edgectl $B nodes --scope proximity --near 48.85,2.35 --radius-km 100 -o json |
    jq_ '",".join(n["node_id"] for n in d["nodes"])')
  [ "$near" = "$ID_A" ] || fail "proximity 100 km of Paris: got '$near', want $ID_A" || return 1
  near=$(nc_edgectl $A nodes --scope proximity --near 45.0,4.0 --radius-km 1000 -o json |
    jq_ '",".join(n["node_id"] for n in d["nodes"])')
  [ "$near" = "$ID_B,$ID_A" ] || fail "proximity near Lyon: got '$near', want B then A" || return 1

  # A -> B: B cannot be reached from outside, so through its SEP and a BEP.
  local out
  wait_or_fail 20 "B holds a SEP" sep_held $B || return 1
  out=$(nc_edgectl $A call "$ID_B" /api/v1/node 2>"$NC_DIR/call_ab.err")
  echo "$out" | grep -q "$ID_B" || fail "A -> B: $(cat "$NC_DIR/call_ab.err") $out" || return 1
  grep -q "via relay" "$NC_DIR/call_ab.err" || fail "A -> B went $(cat "$NC_DIR/call_ab.err"), not via relay" || return 1
  log "A -> B through the relays: answered by $ID_B"
  # B -> A: A is reachable, so directly (out through the NAT).
  out=$(nc_edgectl $B call "$ID_A" /api/v1/node 2>"$NC_DIR/call_ba.err")
  echo "$out" | grep -q "$ID_A" || fail "B -> A: $(cat "$NC_DIR/call_ba.err") $out" || return 1
  grep -q "via direct" "$NC_DIR/call_ba.err" || fail "B -> A went $(cat "$NC_DIR/call_ba.err"), not direct" || return 1
  log "B -> A directly: answered by $ID_A"
  # Only the allow-listed routes: a write on the target is refused.
  if nc_edgectl $A call "$ID_B" /api/v1/services/x -X DELETE >/dev/null 2>"$NC_DIR/call_del.err"; then
    fail "A could DELETE on B through a peer call" || return 1
  fi
  # C (account other) cannot find B, nor open a relay to it.
  if nc_edgectl $C call "$ID_B" /api/v1/node >/dev/null 2>"$NC_DIR/call_cb.err"; then
    fail "C of another account reached B" || return 1
  fi
  log "C -> B refused: $(cat "$NC_DIR/call_cb.err")"
  # Every relay step needs a token.
  local code
  code=$(nc_exec $BK curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H 'Content-Type: application/json' \
    -d "{\"target\":\"$ID_B\"}" http://$BK_IP:8080/v1/relay/connect)
  [ "$code" = 401 ] || fail "relay connect without a token answered $code, want 401" || return 1
  code=$(nc_exec $BK curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $ADMIN_TOKEN.x" -d "{\"target\":\"$ID_B\"}" http://$BK_IP:8080/v1/relay/connect)
  [ "$code" = 401 ] || fail "relay connect with a tampered token answered $code, want 401" || return 1
  return 0
}

scenario_restart() {
  [ -n "${ID_B:-}" ] || { scenario_nat || return 1; }
  kill -9 "$BK_PID"
  wait "$BK_PID" 2>/dev/null
  log "backend killed (-9); restarting on the same store"
  start_backend || fail "backend did not restart" || return 1
  # Nothing lost: the account scope still lists both, straight after the restart.
  has_count $A 2 || fail "after the restart the account scope shows $(account_count $A) nodes" || return 1
  local out
  out=$(nc_edgectl $B call "$ID_A" /api/v1/node 2>/dev/null)
  echo "$out" | grep -q "$ID_A" || fail "B -> A after the restart" || return 1
  # B's SEP was on the killed relay: it reconnects, and A reaches B again.
  wait_or_fail 30 "A -> B through the relays after the restart" call_answers $A "$ID_B" || return 1
  log "after the restart: both listed, calls work both ways"
}

scenario_etcd() {
  nc_stop $A; nc_stop $B; nc_stop $C
  [ -n "$BK_PID" ] && kill "$BK_PID" 2>/dev/null && wait "$BK_PID" 2>/dev/null
  nc_wipe $A; nc_wipe $B; nc_wipe $C
  rm -rf "$BK_DIR/data" "$BK_DIR/data2"
  nc_spawn $BK "$BK_DIR/etcd.log" etcd --data-dir "$BK_DIR/etcd" --name e1 \
    --listen-client-urls http://$BK_IP:2379 --advertise-client-urls http://$BK_IP:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e1=http://127.0.0.1:2380
  ETCD_PID=$NC_SPAWN_PID
  wait_or_fail 20 "etcd up" nc_exec $BK curl -fsS -m 1 http://$BK_IP:2379/health || return 1
  # Both replicas share the KEK (as the chart's Secret gives it) and the store.
  mkdir -p "$BK_DIR/keys"
  head -c 32 /dev/urandom >"$BK_DIR/keys/kek"
  start_backend --store etcd:http://$BK_IP:2379 --key-file "$BK_DIR/keys/kek" || return 1
  nc_spawn $BK "$BK_DIR/backend2.log" "$NC_BIN/edge-backend" --listen 0.0.0.0:8081 \
    --relay-listen 0.0.0.0:8086 --relay-advertise $BK_IP:8086 --issuer http://$BK_IP:8080 \
    --data-dir "$BK_DIR/data2" --admin-secret-file "$BK_DIR/admin-secret" \
    --instance-id bk2 --location 45.76,4.84 --store etcd:http://$BK_IP:2379 --key-file "$BK_DIR/keys/kek"
  wait_or_fail 20 "replica 2 up" nc_exec $BK curl -fsS -m 1 http://$BK_IP:8081/healthz || return 1
  setup_accounts || fail "accounts on etcd" || return 1
  start_node $A http://$BK_IP:8080 "$NC_DIR/acme.join" 48.85,2.35
  start_node $B http://$BK_IP:8081 "$NC_DIR/acme.join" 45.76,4.84
  nc_wait 20 nc_healthy $A && nc_wait 20 nc_healthy $B || fail "nodes did not start" || return 1
  ID_A=$(node_id $A) && ID_B=$(node_id $B) || return 1
  wait_or_fail 30 "A (replica 1) sees B (replica 2) by account" has_count $A 2 || return 1
  wait_or_fail 30 "B (replica 2) sees A (replica 1) by account" has_count $B 2 || return 1
  wait_or_fail 20 "B unreachable" is_reachable $B False || return 1
  local out
  wait_or_fail 30 "A -> B relayed across replicas" call_answers $A "$ID_B" || return 1
  log "two replicas on etcd: registrations and relays cross them"
}

run() {
  local n=$1 name=$2
  [[ ,$ONLY, == *,$n,* ]] || return 0
  log "=== scenario $n: $name"
  if "scenario_$name"; then
    e2e_record "$n" PASS "$name"
  else
    e2e_record "$n" FAIL "$name"
    for i in $A $B $C; do
      [ -f "$(nc_dir $i)/edged.log" ] && { echo "--- n$i edged.log (tail)"; tail -25 "$(nc_dir $i)/edged.log"; }
    done
    for f in "$BK_DIR"/backend*.log; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; }; done
  fi
}
run 1 nat
run 2 restart
run 3 etcd
e2e_summary
