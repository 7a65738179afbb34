#!/usr/bin/env bash
# edgectl against a real edged (light runtime, discovery off, all under a temp dir): the
# commands tests/cli/edgectl_test.cc only drives against a fake node, asserted on the
# table output a person reads and, where a script would read it, on -o json.
#
#   images load/ls/rm, apply --dry-run, apply, multi-file all-or-nothing apply, describe
#   (a dynamic port), restart, rollback --to, logs -f, events -f, delete --dry-run,
#   delete, and an oversized manifest (exit 4 naming the limit, not a SIGPIPE death).
#
#   tests/integration/edgectl_e2e.sh     (root; EDGE_BUILD_DIR=build)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib/local_edged.sh
source "$HERE/lib/local_edged.sh"
IMAGES=$LE_BUILD/images
T=$(mktemp -d /tmp/edgectl-e2e.XXXXXX)
BG_PIDS=()

step() { echo "=== $*"; }
fail() {
  echo "FAIL: $*" >&2
  if [ -n "$LE_DIR" ]; then
    echo "--- edged log (last 30 lines):" >&2
    tail -n 30 "$LE_DIR/edged.log" >&2 || true
  fi
  exit 1
}
ctl() { le_ctl "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

# run CMD...: runs it, keeping stdout in $OUT, stderr in $ERR and the status in $RC.
run() {
  RC=0
  "$@" >"$T/out" 2>"$T/err" || RC=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
}
# expect_out TEXT / expect_err TEXT: the last run's stdout/stderr holds TEXT (a line part).
expect_out() { grep -F -- "$1" <<<"$OUT" >/dev/null || fail "stdout lacks '$1'; it was:
$OUT
stderr: $ERR"; }
expect_err() { grep -F -- "$1" <<<"$ERR" >/dev/null || fail "stderr lacks '$1'; it was:
$ERR"; }
expect_rc() { [ "$RC" = "$1" ] || fail "exit status $RC, want $1; stdout: $OUT
stderr: $ERR"; }
# expect_row REGEX: a stdout line matches the extended REGEX (columns of a table).
expect_row() { grep -E -- "$1" <<<"$OUT" >/dev/null || fail "no line of stdout matches /$1/:
$OUT"; }

wait_until() {  # SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { ctl get instances >&2 || true; fail "timed out waiting for: $what"; }
    sleep 0.1
  done
}

# Every instance of SERVICE runs generation GEN, is ready, and there are N.
converged() {  # SERVICE GEN N
  ctl get instances -o json | json "
inst=[i for i in d['instances'] if i['service']=='$1']
assert len(inst)==$3, inst
assert all(i['generation']==$2 and i['ready'] and i['state']=='running' for i in inst), inst"
}

cleanup() {
  local rc=$?
  set +e
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  le_cleanup
  rm -rf "$T"
  exit $rc
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "edgectl_e2e: needs root (the light runtime)" >&2; exit 1; }
for f in "$LE_BIN/edged" "$LE_BIN/edgectl" "$IMAGES/hello.tar" "$IMAGES/busybox.tar"; do
  [ -e "$f" ] || fail "$f is not built (ninja edged edgectl edge_test_images)"
done

step "edged starts"
le_start "$T/node" || fail "edged did not start"
run ctl status
expect_rc 0
expect_row '^Runtime: +light'
expect_row '^Services: +0$'

step "images load, ls, rm"
run ctl images load "$IMAGES/busybox.tar"
expect_rc 0
expect_out "Loaded image: "
busybox_tag=$(sed -n 's/^Loaded image: //p' <<<"$OUT" | head -n1)
run ctl images load "$IMAGES/hello.tar"
expect_rc 0
[ "$OUT" = "Loaded image: edgecloud/hello:latest" ] || fail "images load said: $OUT"
run ctl images ls
expect_rc 0
expect_row '^IMAGE +ID +SIZE +AGE +IN USE$'
expect_row '^edgecloud/hello:latest +[0-9a-f]{12} +[0-9.]+[KM]iB +[^ ]+ +no$'
expect_row "^${busybox_tag//./\\.} +[0-9a-f]{12} "
run ctl images rm "$busybox_tag"
expect_rc 0
expect_out "Deleted: "
run ctl images ls
grep -F "$busybox_tag" <<<"$OUT" >/dev/null && fail "images rm left $busybox_tag listed: $OUT"
run ctl images rm "$busybox_tag"
expect_rc 3

mkdir -p "$T/app"
cp "$IMAGES/hello.tar" "$T/app/hello.tar"
manifest() {  # NAME GREETING [REPLICAS]
  cat <<YAML
apiVersion: edge/v1
kind: Service
metadata: {name: $1}
spec:
  image: ./hello.tar
  replicas: ${3:-2}
  ports: [{name: http}]
  env: [{name: GREETING, value: "$2"}]
  healthCheck:
    http: {path: /healthz, port: http}
    interval: 500ms
    timeout: 500ms
YAML
}
manifest hello one >"$T/app/hello.yaml"

step "apply --dry-run changes nothing"
run ctl apply --dry-run -f "$T/app/hello.yaml"
expect_rc 0
[ "$OUT" = "service/hello created (generation 1) (dry run)" ] || fail "dry run said: $OUT"
run ctl get services
expect_rc 0
if [ -n "$OUT" ] || [ "$ERR" != "No services." ]; then
  fail "a dry run created something: $OUT $ERR"
fi

step "apply of several files is all or nothing"
manifest other x 1 >"$T/app/other.yaml"
cat >"$T/app/bad.yaml" <<'YAML'
apiVersion: edge/v1
kind: Service
metadata: {name: bad}
spec:
  image: ./hello.tar
  replicas: -1
YAML
run ctl apply -f "$T/app/other.yaml" -f "$T/app/bad.yaml"
expect_rc 4
expect_err "bad.yaml: doc 1: spec.replicas: "
run ctl get services -q
[ -z "$OUT" ] || fail "the good file of a failed multi-file apply was applied: $OUT"

step "apply, get, describe"
run ctl apply -f "$T/app/hello.yaml"
expect_rc 0
[ "$OUT" = "service/hello created (generation 1)" ] || fail "apply said: $OUT"
wait_until 30 "hello generation 1 to converge" converged hello 1 2
run ctl get services
expect_row '^NAME +GEN +STATE +READY +AGE +IMAGE$'
expect_row '^hello +1 +running +2/2 +[^ ]+ +edgecloud/hello:latest$'
run ctl get instances hello
expect_row '^NAME +SERVICE +STATE +READY +HEALTH +RESTARTS +AGE +IMAGE +PORTS$'
expect_row '^hello-0-1 +hello +running +yes +healthy +0 +[^ ]+ +edgecloud/hello:latest +http:[0-9]+$'
run ctl describe hello
expect_rc 0
# shellcheck disable=SC2016 # $PORT is what the user reads, not a shell variable
expect_row '^Ports: +http dynamic/tcp \(a host port per instance, in \$PORT and \$PORT_HTTP\)$'
expect_row '^Replicas: +2 desired, 2 ready, 2 running, 2 updated$'
expect_row '^  1 +[^ ]+ ago +edgecloud/hello:latest +\*$'
run ctl images rm edgecloud/hello:latest
expect_rc 6

step "logs -f and events -f stream until stopped"
ctl logs -f hello >"$T/logs.out" 2>"$T/logs.err" &
BG_PIDS+=($!)
logs_pid=$!
ctl events -f --service hello >"$T/events.out" 2>"$T/events.err" &
BG_PIDS+=($!)
events_pid=$!
# The health checks (every 500 ms) make httpd log a line per request.
wait_until 10 "a followed log line" grep -E '^hello-[01]-1 \| .*response:200' "$T/logs.out"
# A change after the follow started reaches the event stream.
manifest hello two >"$T/app/hello.yaml"
run ctl apply -f "$T/app/hello.yaml"
expect_rc 0
[ "$OUT" = "service/hello updated (generation 2)" ] || fail "re-apply said: $OUT"
wait_until 10 "service.applied on the followed events" \
  grep -E '^[0-9T:-]+Z +service\.applied +hello +- +.*generation 2' "$T/events.out"
head -n1 "$T/events.out" | grep -E '^TIME +TYPE +SERVICE +INSTANCE +MESSAGE$' >/dev/null ||
  fail "events -f has no header: $(head -n3 "$T/events.out")"
kill -0 "$logs_pid" 2>/dev/null || fail "logs -f ended by itself: $(cat "$T/logs.err")"
kill -0 "$events_pid" 2>/dev/null || fail "events -f ended by itself: $(cat "$T/events.err")"
kill "$logs_pid" "$events_pid"
wait_until 30 "hello generation 2 to converge" converged hello 2 2

step "restart restarts every instance"
run ctl restart hello
expect_rc 0
[ "$OUT" = "service/hello restarting (2 instances)" ] || fail "restart said: $OUT"
restarted() {
  converged hello 2 2 && ctl get instances -o json | json "
assert all(i['restarts']>=1 for i in d['instances'] if i['service']=='hello'), d"
}
wait_until 30 "both instances restarted and ready" restarted
run ctl get instances hello
expect_row '^hello-0-2 +hello +running +yes +healthy +1 +'

step "rollback --to"
run ctl rollback hello --to 1
expect_rc 0
[ "$OUT" = "service/hello rolled back to generation 1 (now generation 3)" ] ||
  fail "rollback said: $OUT"
wait_until 30 "hello generation 3 to converge" converged hello 3 2
run ctl get services hello -o json
json "assert d['generation']==3 and d['manifest']['spec']['env'][0]['value']=='one', d" <<<"$OUT" ||
  fail "rollback --to 1 did not bring generation 1's manifest back: $OUT"
run ctl rollback hello --to 9
expect_rc 3
expect_err 'edgectl: service "hello" has no generation 9 (it has 1..3)'

step "an oversized manifest is refused with the limit, exit 4"
python3 - "$T/app/huge.yaml" <<'PY'
import sys
lines = ["apiVersion: edge/v1", "kind: Service", "metadata: {name: huge}", "spec:",
         "  image: ./hello.tar", "  env:"]
size, i = 0, 0
while size < 5_000_000:
    line = '  - {name: V%d, value: "%s"}' % (i, "x" * 200)
    lines.append(line)
    size += len(line) + 1
    i += 1
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
run ctl apply -f "$T/app/huge.yaml"
expect_rc 4
[ -z "$OUT" ] || fail "oversized apply printed on stdout: $OUT"
expect_err "edgectl: manifest $T/app/huge.yaml is too large for the node (4.8MiB): "
expect_err "the limit is 4194304 bytes (4 MiB)"
# `call` streams a body through this node too: the same refusal, the same exit status.
head -c 5000000 /dev/zero | tr '\0' x >"$T/app/huge.body"
run ctl call 0123456789abcdef /api/v1/node -X POST -d "@$T/app/huge.body"
expect_rc 4
expect_err "edgectl: the request body (4.8MiB) is too large: "
expect_err "the limit is 4194304 bytes (4 MiB)"

step "delete --dry-run, then delete"
run ctl delete hello --dry-run
expect_rc 0
[ "$OUT" = "service/hello deleted (generation 3) (dry run)" ] || fail "delete --dry-run said: $OUT"
run ctl get services -q
[ "$OUT" = hello ] || fail "delete --dry-run deleted: $OUT"
run ctl delete hello
expect_rc 0
[ "$OUT" = "service/hello deleted (generation 3)" ] || fail "delete said: $OUT"
wait_until 20 "hello's instances to go" bash -c "[ -z \"\$($LE_BIN/edgectl --host unix://$LE_DIR/edged.sock get instances -q)\" ]"
run ctl delete hello
expect_rc 3

echo "edgectl_e2e: all passed in ${SECONDS}s"
