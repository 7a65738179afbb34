#!/usr/bin/env bash
# Makes sure a Docker Engine answers on /var/run/docker.sock, starting Debian's dockerd
# (without iptables or a bridge, which this kind of host does not need) when none runs.
set -euo pipefail

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  echo "start-dockerd: dockerd is not installed (apt-get install docker.io)" >&2
  exit 1
fi
log=/var/log/edge-dockerd.log
echo "start-dockerd: starting dockerd (log: $log)" >&2
nohup dockerd --iptables=false --bridge=none >"$log" 2>&1 &
for _ in $(seq 1 100); do
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.3
done
echo "start-dockerd: dockerd did not answer within 30 s; last log lines:" >&2
tail -20 "$log" >&2
exit 1
