#!/usr/bin/env bash
# The main job: a node running a microservice, on edged's embedded defaults.
#
# Installs what is missing, builds edged, edgectl and the example image, starts edged
# (light runtime unless a Docker Engine answers; desired state and images in ./.edged),
# deploys examples/hello.yaml (two replicas of a busybox httpd, health-checked), calls
# every instance and shows `edgectl get services`. edged keeps running afterwards;
# `scripts/run-demo.sh --stop` stops it (the workloads stay up; --stop --purge removes
# them and the state).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/.edged
edgectl=$root/build/bin/edgectl

stop_edged() {
  if [ -f "$state/edged.pid" ] && kill -0 "$(cat "$state/edged.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$state/edged.pid")"
    for _ in $(seq 50); do kill -0 "$(cat "$state/edged.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$state/edged.pid"
}

if [ "${1:-}" = "--stop" ]; then
  if [ "${2:-}" = "--purge" ] && [ -S /run/edged/edged.sock ]; then
    for s in $("$edgectl" get services -q 2>/dev/null); do "$edgectl" delete "$s"; done
    for _ in $(seq 100); do
      [ -z "$("$edgectl" get instances -q 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_edged
  [ "${2:-}" = "--purge" ] && rm -rf "$state"
  echo "edged stopped"
  exit 0
fi

scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build edged edgectl edge-shim edge_test_images >/dev/null

mkdir -p "$state"
stop_edged
# Embedded defaults, except where the state lives (this checkout, not /var/lib/edged)
# and discovery: a demo does not announce itself on the network it runs on. Without
# --no-discovery, edged joins (or forms) the cluster of every link of this host.
build/bin/edged --data-dir "$state/data" --no-discovery >>"$state/edged.log" 2>&1 &
echo $! >"$state/edged.pid"
for _ in $(seq 100); do "$edgectl" status >/dev/null 2>&1 && break; sleep 0.1; done
if ! "$edgectl" status; then
  echo "run-demo: edged did not come up; its log:" >&2
  tail -n 30 "$state/edged.log" >&2
  exit 1
fi

echo
"$edgectl" apply -f examples/hello.yaml
for _ in $(seq 150); do
  [ "$("$edgectl" get services hello -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = running ] && break
  sleep 0.2
done

echo
for port in $("$edgectl" get instances -o json | python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["service"] == "hello": print(i["ports"]["http"])'); do
  echo "GET http://127.0.0.1:$port/ -> $(curl -fsS --max-time 2 "http://127.0.0.1:$port/" | tr -d '\n')"
done
# The same page through the node's gateway, as another service on this node calls it.
echo "GET /hello/ through the gateway (unix:///run/edged/gateway.sock) -> $(curl -fsS --max-time 5 \
  --unix-socket /run/edged/gateway.sock http://gateway/hello/ | tr -d '\n')"
echo
"$edgectl" get services
echo
"$edgectl" get instances
echo
"$edgectl" routes
cat <<TXT

edged runs in the background (log: .edged/edged.log, API: /run/edged/edged.sock).
Try:  build/bin/edgectl describe hello
      docker -H unix:///run/edged/edged.sock ps
      build/bin/edgectl logs -f hello
      curl --unix-socket /run/edged/gateway.sock http://gateway/hello/   (or http://127.0.0.1:8083/hello/)
Stop: scripts/run-demo.sh --stop          (workloads keep running, as on a real host)
      scripts/run-demo.sh --stop --purge  (removes the services and the state too)
TXT
