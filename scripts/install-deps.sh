#!/usr/bin/env bash
# Installs the Debian 12 packages Edgecloud builds, tests and runs with. Idempotent:
# does nothing (and skips `apt-get update`) when everything is already installed.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang-format
  # libraries: HTTP (also the Docker socket), JSON, CLI, TLS/hashing, tests
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libssl-dev libgtest-dev libgmock-dev
  # manifests are YAML
  libyaml-cpp-dev
  # the node's desired-state store is an embedded SQLite database
  libsqlite3-dev
  # light runtime: seccomp filters; tar/gzip/zstd image layers (libarchive streams all three)
  libseccomp-dev libarchive-dev libzstd-dev zlib1g-dev
  # example and test images are built from Debian's static busybox (no registry here)
  busybox-static
  # packaging: cpack's DEB generator computes Depends with dpkg-shlibdeps
  dpkg-dev
  # peers and real components the tests and benchmarks drive
  docker.io runc iproute2 curl procps
  # bench/discovery_bench.sh measures edged's discovery side by side with HashiCorp Serf;
  # the cluster scripts read JSON views and events with python3
  serf python3
  # edge-backend's EtcdStore runs on etcd v3.4 (its JSON gateway); the store tests start
  # their own etcd processes, etcdctl is for looking into them by hand
  etcd-server etcd-client
  # tests/charts/check_charts.py parses the Helm charts' values and rendered manifests
  python3-yaml
  # tests/integration/gateway_e2e.sh forges ES256 tokens (wrong scope, expired, other key)
  python3-cryptography
  # tests/integration/backend_e2e.sh puts one network behind a NAT router (masquerade)
  iptables
  # bench/gateway_bench.sh drives wrk against the gateway and against nginx as a reverse
  # proxy (run from its own temporary prefix, never the system config)
  wrk nginx-light
  # tests/integration/metrics_lint.sh runs `promtool check metrics` (in Debian's
  # prometheus package) on a live edged's and edge-backend's /metrics
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: these packages are missing and installing them needs root: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# etcd-server's postinst starts and enables a system etcd on 127.0.0.1:2379 (wherever
# services may start); nothing of ours uses it (the tests run their own etcd processes),
# so a freshly installed one is stopped and disabled rather than left holding the port.
if [[ " ${missing[*]} " == *" etcd-server "* ]]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
  else
    /etc/init.d/etcd stop >/dev/null 2>&1 || true
    update-rc.d etcd disable >/dev/null 2>&1 || true
  fi
fi
# Likewise nginx's postinst may start a system nginx on port 80: the bench runs its own.
if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now nginx.service >/dev/null 2>&1 || true
  else
    /etc/init.d/nginx stop >/dev/null 2>&1 || true
    update-rc.d nginx disable >/dev/null 2>&1 || true
  fi
fi
# prometheus's postinst enables a system Prometheus on :9090; only promtool is wanted.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  else
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
