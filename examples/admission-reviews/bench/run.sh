#!/bin/sh
# Load test of the admission webhook (`make bench-webhook`): `bylaw serve` with the Pod Security
# policies of Kyverno's library, then the same server with no policies (the framework's
# ceiling), each driven by oha over HTTPS keep-alive connections on 127.0.0.1 posting the Pod
# CREATE review in this directory to /validate/fail for a fixed time. Prints, per run,
# throughput, latency percentiles, the server's CPU time per review and its peak RSS (VmHWM),
# then the policies' share: throughput with the policies ÷ throughput without.
# The Pod Security set is the issue's 18 policies (`baseline` and `restricted`); SUBRULE=1 adds
# the four `subrule` policies, which check the same standard again through Kyverno's podSecurity
# rule (22 policies, the set of rounds 1–13 in docs/performance.md).
# ROUNDS=n alternates the two servers n times and reports the median of the rounds' shares: on
# a shared VM the speed of a core drifts over tens of seconds, so one pair of runs can read
# anything from 48% to 78% for the same binary (docs/performance.md, round 14).
# POLICIES=… (comma-separated paths) measures only that set. SERVER_CPUS=0 CLIENT_CPUS=1 pins
# the server and oha to those CPUs (taskset), so that neither takes the other's share: on
# shared cores the scheduler splits CPU by runnable threads, and a server with more threads
# looks faster by starving the client.
set -eu

BYLAW=${BYLAW:-target/release/bylaw}
POLICY_DIR=${POLICY_DIR:-../shared/conformance/kyverno-policies/pod-security}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-1}
SUBRULE=${SUBRULE:-0}
PORT=${PORT:-18444}
REVIEW=${REVIEW:-examples/admission-reviews/bench/pod-create.json}

for tool in oha curl; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-webhook needs $tool" >&2
    exit 1
  }
done

work=$(mktemp -d)
mkdir "$work/none"
server=
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT INT TERM
url="https://localhost:$PORT"

pinned() { # pinned CPUS COMMAND…: runs COMMAND on CPUS when set
  cpus=$1
  shift
  if [ -n "$cpus" ]; then
    taskset -c "$cpus" "$@"
  else
    "$@"
  fi
}

load() {
  pinned "${CLIENT_CPUS:-}" oha -z "$1s" -c "$CONNECTIONS" --no-tui --cacert "$work/ca.crt" -m POST \
    -H 'Content-Type: application/json' -D "$REVIEW" --output-format json \
    "$url/validate/fail?timeout=10s"
}

cpu_ticks() {
  # utime + stime of the server, in clock ticks (fields 14 and 15 of /proc/PID/stat).
  sed 's/.*) //' "/proc/$server/stat" | awk '{print $12 + $13}'
}

machine_ticks() {
  # All CPUs' ticks, and those the hypervisor gave to other guests (steal), from /proc/stat.
  awk '/^cpu / {print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9}' /proc/stat
}

# bench NAME POLICIES: one run; leaves "NAME reviews/s" in $work/throughput.
bench() {
  name=$1
  policies=$2
  [ -e "${policies%%,*}" ] || {
    echo "no policies at ${policies%%,*} (set CONFORMANCE_DIR or POLICIES)" >&2
    exit 1
  }
  set -- "$BYLAW" serve --policies "$policies" \
    --dev-tls --dev-tls-dir "$work" --listen "127.0.0.1:$PORT" --log-filter warn
  # taskset runs the server in its own process, so $! is the server.
  [ -z "${SERVER_CPUS:-}" ] || set -- taskset -c "$SERVER_CPUS" "$@"
  "$@" >"$work/serve.log" 2>&1 &
  server=$!
  tries=0
  until curl -fsS --cacert "$work/ca.crt" "$url/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$server" 2>/dev/null; then
      echo "bylaw serve did not become ready:" >&2
      cat "$work/serve.log" >&2
      exit 1
    fi
    sleep 0.1
  done

  answer=$(curl -fsS --cacert "$work/ca.crt" -H 'Content-Type: application/json' \
    --data-binary "@$REVIEW" "$url/validate/fail?timeout=10s")
  rules=$(curl -fsS --cacert "$work/ca.crt" "$url/metrics" |
    grep -c '^bylaw_policy_rule_info_total{.*} 1$' || true)
  echo "== $name: $BYLAW (pid $server), $rules rules (autogen included) from $policies"
  echo "review: $REVIEW ($(wc -c <"$REVIEW") bytes) -> $answer"

  load "$WARMUP" >/dev/null
  before=$(cpu_ticks)
  machine_before=$(machine_ticks)
  load "$DURATION" >"$work/oha.json"
  after=$(cpu_ticks)
  machine_after=$(machine_ticks)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")
  stop_server

  "$BYLAW" jp query -u -i "$work/oha.json" \
    "join('', ['connections: $CONNECTIONS, duration: ${DURATION}s, reviews: ', to_string(sum(values(statusCodeDistribution))), ' (status ', to_string(keys(statusCodeDistribution)), ')'])" \
    "join('', ['throughput: ', to_string(round(summary.requestsPerSec, \`0\`)), ' reviews/s'])" \
    "join('', ['latency ms: p50 ', to_string(round(multiply(latencyPercentiles.p50, \`1000\`), \`3\`)), ', p99 ', to_string(round(multiply(latencyPercentiles.p99, \`1000\`), \`3\`)), ', p99.9 ', to_string(round(multiply(latencyPercentiles.\"p99.9\", \`1000\`), \`3\`)), ', max ', to_string(round(multiply(summary.slowest, \`1000\`), \`3\`))])"
  reviews=$("$BYLAW" jp query -u -i "$work/oha.json" "sum(values(statusCodeDistribution))")
  rate=$("$BYLAW" jp query -u -i "$work/oha.json" "summary.requestsPerSec")
  echo "$name $rate" >>"$work/throughput"
  ticks=$(getconf CLK_TCK)
  awk -v t="$((after - before))" -v hz="$ticks" -v n="$reviews" -v d="$DURATION" \
    'BEGIN { per = (n > 0) ? t / hz / n * 1e6 : 0; printf "server CPU: %.2f cores, %.0f µs per review\n", t / hz / d, per }'
  awk -v kb="$hwm" 'BEGIN { printf "server peak RSS (VmHWM): %.1f MiB\n", kb / 1024 }'
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$machine_before $machine_after" | awk '{ all = $3 - $1; stolen = $4 - $2
    printf "CPU stolen by the hypervisor: %.1f%%\n", (all > 0) ? stolen / all * 100 : 0 }'
}

if [ -n "${POLICIES:-}" ]; then
  bench policies "$POLICIES"
  exit 0
fi
pod_security="$POLICY_DIR/baseline,$POLICY_DIR/restricted"
[ "$SUBRULE" != 1 ] || pod_security="$pod_security,$POLICY_DIR/subrule"
round=1
while [ "$round" -le "$ROUNDS" ]; do
  [ "$ROUNDS" -eq 1 ] || echo "== round $round of $ROUNDS"
  bench "Pod Security" "$pod_security"
  bench "no policies" "$work/none"
  round=$((round + 1))
done
# The throughput file holds the rounds' pairs in order: Pod Security, then no policies.
awk '{ rate[NR] = $NF }
  END {
    n = int(NR / 2)
    for (i = 1; i <= n; i++) share[i] = rate[2 * i - 1] / rate[2 * i] * 100
    # insertion sort of a copy, for the median
    for (i = 1; i <= n; i++) sorted[i] = share[i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && sorted[j - 1] > sorted[j]; j--) {
      t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t
    }
    median = (n % 2) ? sorted[(n + 1) / 2] : (sorted[n / 2] + sorted[n / 2 + 1]) / 2
    if (n == 1) {
      printf "== policies'"'"' share: %.0f%% (Pod Security throughput ÷ no-policy throughput)\n", median
    } else {
      rounds = ""
      for (i = 1; i <= n; i++) rounds = rounds sprintf("%s%.0f%%", (i > 1 ? ", " : ""), share[i])
      printf "== policies'"'"' share: %.0f%%, the median of %d rounds (%s; Pod Security throughput ÷ no-policy throughput of the same round)\n", median, n, rounds
    }
  }' "$work/throughput"
