#!/usr/bin/env bash
# The main job, until the node agent exists: builds the runtime tools, loads the example
# microservice image into the light runtime and runs it (busybox httpd on host port
# 18080, 64 MiB memory and 64 processes at most), then shows it answering.
#
#   EDGE_DATA_DIR   state directory (default /var/lib/edged)
#   EDGE_RUNTIME    light (default) | docker | auto
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${EDGE_DATA_DIR:-/var/lib/edged}"
runtime="${EDGE_RUNTIME:-light}"

scripts/install-deps.sh
if [ "$runtime" != "light" ]; then scripts/start-dockerd.sh; fi
cmake -S . -B build -G Ninja >/dev/null
ninja -C build edge-ctr edge-shim edge_test_images >/dev/null

ctr=(build/bin/edge-ctr --runtime "$runtime" --data-dir "$data_dir")
"${ctr[@]}" load -i build/images/hello.tar
"${ctr[@]}" rm -f hello >/dev/null 2>&1 || true
"${ctr[@]}" run -d --name hello --memory 64Mi --pids-limit 64 edgecloud/hello:latest

for _ in $(seq 1 50); do
  if body=$(curl -fsS --max-time 1 http://127.0.0.1:18080/ 2>/dev/null); then
    echo
    echo "GET http://127.0.0.1:18080/ -> $body"
    echo
    "${ctr[@]}" ps
    echo
    echo "logs:  ${ctr[*]} logs hello"
    echo "stop:  ${ctr[*]} rm -f hello"
    exit 0
  fi
  sleep 0.1
done
echo "run-demo: the container did not answer on 127.0.0.1:18080 within 5 s" >&2
"${ctr[@]}" ps -a >&2 || true
"${ctr[@]}" logs hello >&2 || true
exit 1
