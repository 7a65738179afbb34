#!/usr/bin/env bash
# `promtool check metrics` on the /metrics of a real edged and a real edge-backend: any
# complaint (a counter without _total, a series without HELP, a unit that is not a base
# unit...) fails the test. edged runs a service that took gateway traffic first, so the
# per-service, per-route and per-upstream series (histograms included) are there to check.
#
#   tests/integration/metrics_lint.sh     (root: edged's light runtime; EDGE_BUILD_DIR=build)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib/local_edged.sh
source "$HERE/lib/local_edged.sh"
T=$(mktemp -d /tmp/metrics-lint.XXXXXX)
BACKEND_PID=

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$BACKEND_PID" ]; then
    kill "$BACKEND_PID" 2>/dev/null
    wait "$BACKEND_PID" 2>/dev/null
  fi
  le_cleanup
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT

# lint NAME FILE: promtool must exit 0 and say nothing.
lint() {
  local said rc=0
  said=$(promtool check metrics <"$2" 2>&1) || rc=$?
  if [ $rc -ne 0 ] || [ -n "$said" ]; then
    echo "--- $1 /metrics:" >&2
    cat "$2" >&2
    fail "promtool check metrics on $1 (exit $rc):
$said"
  fi
  echo "$1: $(grep -vc '^#' "$2") samples, promtool has no complaint"
}
# has FILE REGEX: the scrape holds a sample line matching REGEX (what was linted is real).
has() { grep -E "$2" "$1" >/dev/null || fail "$1 has no sample matching /$2/"; }

[ "$(id -u)" = 0 ] || { echo "metrics_lint: needs root (the light runtime)" >&2; exit 1; }
command -v promtool >/dev/null ||
  fail "promtool is not installed (Debian package prometheus; scripts/install-deps.sh)"
for f in "$LE_BIN/edged" "$LE_BIN/edgectl" "$LE_BIN/edge-backend" "$LE_BUILD/images/hello.tar"; do
  [ -e "$f" ] || fail "$f is not built (ninja edged edgectl edge-backend edge_test_images)"
done

echo "=== edged"
le_start "$T/node" || fail "edged did not start"
mkdir -p "$T/app"
cp "$LE_BUILD/images/hello.tar" "$T/app/"
cat >"$T/app/hello.yaml" <<'YAML'
apiVersion: edge/v1
kind: Service
metadata: {name: hello}
spec:
  image: ./hello.tar
  replicas: 2
  ports: [{name: http}]
  healthCheck: {http: {path: /healthz, port: http}, interval: 500ms, timeout: 500ms}
YAML
le_ctl apply -f "$T/app/hello.yaml" -q || fail "apply"
ready() { le_ctl get instances -o json | python3 -c '
import json, sys
d = json.load(sys.stdin)["instances"]
assert len(d) == 2 and all(i["ready"] for i in d)'; }
for _ in $(seq 150); do ready 2>/dev/null && break; sleep 0.1; done
ready || fail "hello did not become ready"
# Traffic through the gateway: the route and upstream series, a histogram with counts.
for _ in $(seq 100); do
  curl -fsS -m 2 --unix-socket "$LE_DIR/gateway.sock" http://local/hello/ >/dev/null && break
  sleep 0.1
done
for _ in $(seq 5); do
  curl -fsS -m 2 --unix-socket "$LE_DIR/gateway.sock" http://local/hello/ >/dev/null ||
    fail "the gateway does not serve /hello/"
done
curl -fsS -m 5 --unix-socket "$LE_DIR/edged.sock" http://local/metrics >"$T/edged.metrics" ||
  fail "GET /metrics on edged"
has "$T/edged.metrics" '^edged_service_replicas_ready\{service="hello"\} 2$'
has "$T/edged.metrics" '^edge_gateway_route_request_duration_seconds_bucket\{route="hello",le="\+Inf"\} [1-9]'
has "$T/edged.metrics" '^edge_gateway_upstream_requests_total\{route="hello",upstream="local:'
lint edged "$T/edged.metrics"

echo "=== edge-backend"
read -r port relay_port <<<"$(le_free_ports 2 | tr '\n' ' ')"
"$LE_BIN/edge-backend" --listen "127.0.0.1:$port" --relay-listen "127.0.0.1:$relay_port" \
  --data-dir "$T/backend" --instance-id lint >"$T/backend.log" 2>&1 &
BACKEND_PID=$!
for _ in $(seq 100); do
  curl -fsS -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$BACKEND_PID" 2>/dev/null || { cat "$T/backend.log" >&2; fail "edge-backend exited"; }
  sleep 0.1
done
curl -fsS -m 5 "http://127.0.0.1:$port/metrics" >"$T/backend.metrics" ||
  { cat "$T/backend.log" >&2; fail "GET /metrics on edge-backend"; }
has "$T/backend.metrics" '^edge_backend_store_up 1$'
has "$T/backend.metrics" '^edge_backend_relay_connections [0-9]+$'
lint edge-backend "$T/backend.metrics"
