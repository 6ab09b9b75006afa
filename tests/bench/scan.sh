#!/bin/sh
# `make bench-scan`: `bylaw serve` (release) against the fake API server holding PODS Pods in
# NAMESPACES namespaces and the Pod Security policies; reports what the first full background
# scan costs bylaw (CPU, peak RSS, time until every report is written) and what the reports
# cost the cluster (objects, bytes, writes). The fake runs in its own process, so bylaw's
# figures are bylaw's alone.
# Usage: BYLAW=target/release/bylaw FAKE=target/release/examples/scan_bench_apiserver \
#        POLICY_DIR=policies/pod-security PODS=10000 NAMESPACES=100 sh tests/bench/scan.sh
set -eu
: "${BYLAW:?release bylaw binary}" "${FAKE:?scan_bench_apiserver example}" "${POLICY_DIR:?}"
PODS=${PODS:-10000}
NAMESPACES=${NAMESPACES:-100}
work=$(mktemp -d)
fake_pid=""; bylaw_pid=""
cleanup() {
  [ -n "$bylaw_pid" ] && kill "$bylaw_pid" 2>/dev/null || true
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$FAKE" "$work/kubeconfig" "$POLICY_DIR" "$PODS" "$NAMESPACES" > "$work/fake.out" 2>&1 &
fake_pid=$!
until grep -q '^ready' "$work/fake.out"; do
  kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake.out"; exit 1; }
  sleep 0.2
done
grep '^ready' "$work/fake.out"
start=$(date +%s%3N)
"$BYLAW" serve --kubeconfig "$work/kubeconfig" --namespace bylaw-system --register-webhooks=false \
  --listen 127.0.0.1:0 --log-filter warn > "$work/serve.log" 2>&1 &
bylaw_pid=$!
until grep -q '^reports' "$work/fake.out"; do
  kill -0 "$bylaw_pid" 2>/dev/null || { echo "bylaw exited:"; cat "$work/serve.log"; exit 1; }
  sleep 0.2
done
end=$(date +%s%3N)
hz=$(getconf CLK_TCK)
cpu=$(awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' /proc/$bylaw_pid/stat)
peak=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$bylaw_pid/status)
grep '^reports' "$work/fake.out"
echo "bylaw: start to settled $(( end - start )) ms (includes 3 s of settling), CPU ${cpu} s (user+system, whole process), peak RSS ${peak}"
