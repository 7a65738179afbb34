#!/usr/bin/env bash
# Builds the edgecloud .deb, checks its contents, installs it on this machine, checks
# what an operator gets (edgectl, the group, the completion; the installed edged
# answering edgectl and running a service) and removes it again, leaving the machine as
# it was.
#
#   scripts/test-deb.sh [build-dir]     (default: build-deb; needs root for dpkg -i)
#
# edged is started by hand with a temp data dir, run dir and sockets and the light
# runtime, so it never touches the host's /var/lib/edged, /run/edged or Docker.
set -euo pipefail
# A pipeline into grep uses `grep PATTERN >/dev/null`, not `grep -q`: with pipefail, grep -q
# quitting at the first match can kill the writer with SIGPIPE and fail the pipeline.

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-deb}
fail() {
  echo "test-deb: FAIL: $*" >&2
  exit 1
}
step() { echo "test-deb: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i, groupadd)"
"$src/scripts/install-deps.sh"
if dpkg-query -W -f='${Status}' edgecloud 2>/dev/null | grep "install ok installed" >/dev/null; then
  fail "edgecloud is already installed here; not touching it"
fi

step "building the package in $build"
# Packaging needs only the installed binaries, not every test and benchmark.
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >/dev/null
targets=(edged edgectl edgectl_completion edge-shim edge-ctr edge-mkimage edge_test_images)
ninja -C "$build" -j2 "${targets[@]}" >/dev/null
rm -f "$build"/edgecloud_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/edgecloud_*.deb)
step "built $deb"

listing=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/edged ./usr/bin/edgectl ./usr/bin/edge-shim ./usr/bin/edge-ctr ./usr/bin/edge-mkimage \
  ./lib/systemd/system/edged.service ./etc/edged/config.yaml \
  ./usr/share/bash-completion/completions/edgectl ./usr/share/doc/edgecloud/edgectl.md \
  ./usr/share/doc/edgecloud/api.md; do
  grep -qx "$f" <<<"$listing" || fail "$f is not in the package"
done
dpkg-deb -f "$deb" Depends | grep 'libc6' >/dev/null || fail "Depends was not computed (dpkg-shlibdeps)"
dpkg-deb -f "$deb" Recommends | grep 'docker.io' >/dev/null || fail "Recommends docker.io is missing"
dpkg-deb -I "$deb" conffiles | grep -x /etc/edged/config.yaml >/dev/null || fail "config.yaml is not a conffile"

group_existed=0
getent group edge >/dev/null && group_existed=1
tmp=$(mktemp -d /tmp/test-deb-XXXXXX)
edged_pid=""
cleanup() {
  if [ -n "$edged_pid" ]; then
    kill "$edged_pid" 2>/dev/null || true
    wait "$edged_pid" 2>/dev/null || true
  fi
  if dpkg-query -W -f='${Status}' edgecloud 2>/dev/null | grep "installed" >/dev/null; then
    dpkg --purge edgecloud >/dev/null || true
  fi
  # postrm keeps the group on purpose; this test leaves the machine as it found it.
  if [ "$group_existed" = 0 ] && getent group edge >/dev/null; then groupdel edge || true; fi
  # The light runtime mounts a tmpfs for its volatile state when the run dir is not one.
  awk -v t="$tmp/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount || true
  rm -rf "$tmp"
}
trap cleanup EXIT

step "installing"
dpkg -i "$deb" >/dev/null
/usr/bin/edgectl --version | grep -x "edgectl [0-9.]*" >/dev/null || fail "edgectl --version"
getent group edge >/dev/null || fail "postinst did not create the group edge"
bash -c 'source /usr/share/bash-completion/completions/edgectl && complete -p edgectl' \
  >/dev/null || fail "the bash completion does not load"
code=0
/usr/bin/edgectl --host "unix://$tmp/none.sock" status 2>/dev/null || code=$?
[ "$code" = 5 ] || fail "edgectl against no node exited $code, want 5"

[ -x /usr/bin/edged ] || fail "the package installed no /usr/bin/edged"
step "starting the installed edged on $tmp"
cat >"$tmp/config.yaml" <<CONF
data_dir: $tmp/data
run_dir: $tmp/run
api_socket: $tmp/edged.sock
gateway_socket: $tmp/gateway.sock
runtime: light
listen: 127.0.0.1:$((20000 + RANDOM % 10000))
discovery: false
CONF
/usr/bin/edged --config "$tmp/config.yaml" >"$tmp/edged.log" 2>&1 &
edged_pid=$!
for _ in $(seq 100); do
  [ -S "$tmp/edged.sock" ] && break
  kill -0 "$edged_pid" 2>/dev/null || { cat "$tmp/edged.log" >&2; fail "edged exited"; }
  sleep 0.1
done
[ -S "$tmp/edged.sock" ] || { cat "$tmp/edged.log" >&2; fail "edged did not open its socket"; }
out=$(/usr/bin/edgectl --host "unix://$tmp/edged.sock" status) ||
  { cat "$tmp/edged.log" >&2; fail "edgectl status against the installed edged"; }
grep -q '^Node:' <<<"$out" || fail "edgectl status printed: $out"

step "deploying a service with the installed binaries"
ctl=(/usr/bin/edgectl --host "unix://$tmp/edged.sock")
cp "$build/images/hello.tar" "$tmp/hello.tar"
cat >"$tmp/hello.yaml" <<YAML
apiVersion: edge/v1
kind: Service
metadata: {name: deb-hello}
spec:
  image: ./hello.tar
  ports: [{name: http}]
  healthCheck: {http: {path: /healthz, port: http}, interval: 1s, timeout: 500ms}
YAML
"${ctl[@]}" apply -f "$tmp/hello.yaml" | grep "service/deb-hello created" >/dev/null || fail "apply"
port=""
for _ in $(seq 150); do
  port=$("${ctl[@]}" get instances -o json | python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["service"] == "deb-hello" and i["ready"]: print(i["ports"]["http"])') || true
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "$port" ] || { "${ctl[@]}" get instances >&2; fail "deb-hello never became ready"; }
curl -fsS -m 2 "http://127.0.0.1:$port/" | grep "Hello from Edgecloud" >/dev/null ||
  fail "deb-hello does not answer on $port"
"${ctl[@]}" delete deb-hello >/dev/null
for _ in $(seq 100); do
  [ -z "$("${ctl[@]}" get instances -q)" ] && break
  sleep 0.2
done
[ -z "$("${ctl[@]}" get instances -q)" ] || fail "deb-hello's instance was not removed"
kill "$edged_pid"
wait "$edged_pid" 2>/dev/null || true
edged_pid=""

step "removing"
dpkg -r edgecloud >/dev/null
[ ! -e /usr/bin/edgectl ] || fail "/usr/bin/edgectl is still there after dpkg -r"
[ -e /etc/edged/config.yaml ] || fail "dpkg -r removed the conffile (only purge should)"
dpkg --purge edgecloud >/dev/null
[ ! -e /etc/edged/config.yaml ] || fail "dpkg --purge left /etc/edged/config.yaml"
step "OK"
