#!/bin/sh
# `make hostile-load`: bylaw serve (release) with the Pod Security policies and a policy whose
# evaluation explodes, on 127.0.0.1 only, under tests/hostile/load.py's hostile clients and the
# HTTP/2 rapid reset and TLS handshake floods of crates/test-support/examples/hostile_client.rs;
# then reviews that make the exploding policy run, timed; then tests/hostile/soak.sh (a second
# server at full load for SOAK_SECONDS; 0 skips it). Prints JSON and summary lines; fails if a
# well-formed review went unanswered within its timeout or the soak had a failed review.
set -eu
BYLAW=${BYLAW:-target/release/bylaw}
PORT=${PORT:-18445}
SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-10}
CONNECTIONS=${CONNECTIONS:-1000}
BODIES=${BODIES:-1000}
MAX_CONCURRENCY=${MAX_CONCURRENCY:-4}
H2_CONNECTIONS=${H2_CONNECTIONS:-8}
TLS_CLIENTS=${TLS_CLIENTS:-200}
SOAK_SECONDS=${SOAK_SECONDS:-60}
HOSTILE_CLIENT=${HOSTILE_CLIENT:-target/release/examples/hostile_client}

. tests/hostile/serve.sh
start_server \
  --policies policies/pod-security/baseline,policies/pod-security/restricted,tests/hostile/exploding \
  --max-concurrency "$MAX_CONCURRENCY"
ulimit -n 8192 2>/dev/null || true
# The prober: one well-formed review after another, from its own process.
(
  while [ ! -e "$work/stop" ]; do
    printf '%s ' "$(date +%s.%N)"
    curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 15 --cacert "$work/ca.crt" \
      -H 'Content-Type: application/json' \
      --data-binary @examples/admission-reviews/03-create-pod-privileged.json \
      "$url/validate/fail?timeout=10s" 2>/dev/null || echo "000 15"
    sleep 0.1
  done
) >"$work/probes" &
prober=$!
python3 tests/hostile/load.py --port "$PORT" --pid "$server" --seconds "$SECONDS_PER_PHASE" \
  --connections "$CONNECTIONS" --bodies "$BODIES" >"$work/phases.json"
# HTTP/2 rapid reset and TLS handshake floods, from the Rust client (one JSON phase a line).
"$HOSTILE_CLIENT" rapid-reset "127.0.0.1:$PORT" "$work/ca.crt" "$server" "$SECONDS_PER_PHASE" \
  "$H2_CONNECTIONS" >"$work/client-phases.jsonl"
"$HOSTILE_CLIENT" tls-flood "127.0.0.1:$PORT" "$work/ca.crt" "$server" "$SECONDS_PER_PHASE" \
  "$TLS_CLIENTS" >>"$work/client-phases.jsonl"
touch "$work/stop"
wait "$prober" 2>/dev/null || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
failed=0
python3 - "$work/phases.json" "$work/probes" "$work/client-phases.jsonl" <<'PY' || failed=1
import json, sys
report = json.load(open(sys.argv[1]))
report["phases"] += [json.loads(line) for line in open(sys.argv[3]) if line.strip()]
probes = []
for line in open(sys.argv[2]):
    parts = line.split()
    if len(parts) == 3:
        probes.append((float(parts[0]), parts[1], float(parts[2])))
for phase in report["phases"]:
    mine = [p for p in probes if phase["start"] <= p[0] <= phase["end"]]
    phase["probes"] = len(mine)
    phase["probes_200"] = sum(1 for p in mine if p[1] == "200")
    phase["probe_max_seconds"] = max((p[2] for p in mine), default=None)
    times = sorted(p[2] for p in mine)
    phase["probe_p50_seconds"] = times[len(times) // 2] if times else None
print(json.dumps(report, indent=2))
# Every well-formed review answered 200 within its 10 s timeout, in every phase.
late = [(p["phase"], p["probes"] - p["probes_200"]) for p in report["phases"]
        if p["probes"] == 0 or p["probes_200"] < p["probes"] or p["probe_max_seconds"] >= 10]
for phase in report["phases"]:
    print(f"{phase['phase']}: rss max {phase['rss_kib_max'] / 1024:.1f} MiB, "
          f"probes {phase['probes_200']}/{phase['probes']} answered 200, "
          f"p50 {phase['probe_p50_seconds']} s, max {phase['probe_max_seconds']} s")
if late:
    print(f"FAIL: probes not answered in time: {late}")
    sys.exit(1)
PY

# The exploding policy: 4,000 containers, each element querying all of them.
python3 - "$work/explode.json" <<'PY'
import json, sys
containers = [{"name": f"c{i}", "image": "registry.example.com/app:1"} for i in range(4000)]
review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "explode", "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": "default", "operation": "CREATE", "userInfo": {"username": "dev"},
    "object": {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "big", "namespace": "default", "labels": {"explode": "true"}},
               "spec": {"containers": containers}}}}
json.dump(review, open(sys.argv[1], "w"))
PY
for i in 1 2 3 4 5 6 7 8; do
  curl -sS -o "$work/explode.out.$i" -w '%{http_code} %{time_total}\n' --cacert "$work/ca.crt" \
    -H 'Content-Type: application/json' --data-binary "@$work/explode.json" \
    "$url/validate/fail?timeout=2s" &
done | sort | uniq -c | sed 's/^/exploding policy, 8 at once, timeout=2s: /'
# (the pipeline above ends when every curl has answered)
echo "exploding policy answer: $(head -c 300 "$work/explode.out.1")"
echo "after: rss_kib=$(grep VmRSS /proc/$server/status | awk '{print $2}') hwm_kib=$(grep VmHWM /proc/$server/status | awk '{print $2}')"
curl -sS --cacert "$work/ca.crt" -H 'Content-Type: application/json' \
  --data-binary @examples/admission-reviews/03-create-pod-privileged.json \
  -o /dev/null -w 'a review after all that: %{http_code} in %{time_total}s\n' "$url/validate/fail?timeout=10s"

kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
if [ "$SOAK_SECONDS" -gt 0 ]; then
  BYLAW="$BYLAW" PORT=$((PORT + 1)) SOAK_SECONDS="$SOAK_SECONDS" sh tests/hostile/soak.sh || failed=1
fi
exit "$failed"
