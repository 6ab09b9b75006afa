#!/bin/sh
# The soak of `make hostile-load`: bylaw serve (release, default limits) with the Pod Security
# policies, driven by oha at full rate (as many reviews as CONNECTIONS keep-alive connections
# get answered) for SOAK_SECONDS on 127.0.0.1, the server's RSS sampled every second. Fails
# unless every review was answered 200; prints RSS at the start and end and its slope.
set -eu
BYLAW=${BYLAW:-target/release/bylaw}
PORT=${PORT:-18446}
SOAK_SECONDS=${SOAK_SECONDS:-60}
CONNECTIONS=${CONNECTIONS:-32}
REVIEW=${REVIEW:-examples/admission-reviews/bench/pod-create.json}

command -v oha >/dev/null 2>&1 || {
  echo "the soak needs oha (make bench-webhook installs it)" >&2
  exit 1
}
. tests/hostile/serve.sh
start_server --policies policies/pod-security/baseline,policies/pod-security/restricted
echo "soak review: $(curl -fsS --cacert "$work/ca.crt" -H 'Content-Type: application/json' \
  --data-binary "@$REVIEW" "$url/validate/fail?timeout=10s" | head -c 200)"

cpu_ticks() { sed 's/.*) //' "/proc/$server/stat" | awk '{print $12 + $13}'; }
# RSS once a second while oha runs (bounded: at most SOAK_SECONDS + 5 samples).
(
  i=0
  while [ "$i" -lt $((SOAK_SECONDS + 5)) ] && [ ! -e "$work/stop" ]; do
    printf '%s %s\n' "$i" "$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")"
    i=$((i + 1))
    sleep 1
  done
) >"$work/rss" &
sampler=$!
before=$(cpu_ticks)
oha -z "${SOAK_SECONDS}s" -c "$CONNECTIONS" --no-tui --cacert "$work/ca.crt" -m POST \
  -H 'Content-Type: application/json' -D "$REVIEW" --output-format json \
  "$url/validate/fail?timeout=10s" >"$work/oha.json"
after=$(cpu_ticks)
touch "$work/stop"
wait "$sampler" 2>/dev/null || true
echo "load average after the soak: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/oha.json" "$work/rss" "$SOAK_SECONDS" "$((after - before))" "$(getconf CLK_TCK)" "$CONNECTIONS" <<'PY'
import json, sys
oha = json.load(open(sys.argv[1]))
seconds, ticks, hz = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
samples = [tuple(map(int, line.split())) for line in open(sys.argv[2]) if len(line.split()) == 2]
samples = [(t, kib) for t, kib in samples if t < seconds]
codes = oha.get("statusCodeDistribution", {})
errors = oha.get("errorDistribution", {})
# oha cancels the request each connection has in flight when the time is up: not a failure.
cut_off = errors.pop("aborted due to deadline", 0)
reviews = sum(codes.values())
failed = reviews - codes.get("200", 0) + sum(errors.values())

def slope(points):
    # Least-squares KiB per second.
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mk = sum(k for _, k in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (k - mk) for t, k in points) / den if den else 0.0

first = [kib for t, kib in samples if t < 10]
last = [kib for t, kib in samples if t >= seconds - 10]
print(json.dumps({
    "soak_seconds": seconds, "connections": int(sys.argv[6]),
    "reviews": reviews, "status_codes": codes, "errors": errors, "failed_reviews": failed,
    "in_flight_when_time_was_up": cut_off,
    "reviews_per_second": round(oha["summary"]["requestsPerSec"]),
    "latency_ms_p50_p99_max": [round(oha["latencyPercentiles"]["p50"] * 1000, 2),
                               round(oha["latencyPercentiles"]["p99"] * 1000, 2),
                               round(oha["summary"]["slowest"] * 1000, 2)],
    "server_cpu_cores": round(ticks / hz / seconds, 2),
    "rss_samples": len(samples),
    "rss_mib_max_first_10s": round(max(first) / 1024, 1) if first else None,
    "rss_mib_max_last_10s": round(max(last) / 1024, 1) if last else None,
    "rss_slope_kib_per_s": round(slope(samples), 1),
    "rss_slope_kib_per_s_after_10s": round(slope([p for p in samples if p[0] >= 10]), 1),
}, indent=2))
sys.exit(1 if failed or reviews == 0 else 0)
PY
