#!/bin/sh
# Runs `bylaw serve` on examples/ with a development certificate, lets a real Prometheus scrape
# it (with bylaw's alert rules loaded), sends the sample AdmissionReviews a few times, then
# asserts that every query of the Grafana dashboard returns data and every alert rule evaluates
# without error. Needs curl and prometheus (Debian's package); `make observability-check` runs
# it from the repository root. Only 127.0.0.1 is used.
set -eu

BYLAW=${BYLAW:-target/debug/bylaw}
PROMETHEUS=${PROMETHEUS:-prometheus}
BYLAW_PORT=${BYLAW_PORT:-18643}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19390}
DASHBOARD=helm/bylaw/files/grafana-dashboard.json
RULES=helm/bylaw/files/prometheus-rules.yaml
REVIEWS=examples/admission-reviews

for tool in curl "$PROMETHEUS" "$BYLAW"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "observability check needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
pids=""
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$BYLAW" serve --policies examples --namespace-labels "$REVIEWS/namespaces.yaml" \
  --dev-tls --dev-tls-dir "$work/tls" --listen "127.0.0.1:$BYLAW_PORT" --log-filter warn \
  >"$work/bylaw.log" 2>&1 &
pids="$pids $!"

cat >"$work/prometheus.yml" <<CONFIG
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["$(pwd)/$RULES"]
scrape_configs:
  - job_name: bylaw
    scheme: https
    tls_config: {ca_file: "$work/tls/ca.crt"}
    static_configs: [{targets: ["127.0.0.1:$BYLAW_PORT"]}]
CONFIG

wait_for() { # url, what
  tries=0
  until curl -fsS --cacert "$work/tls/ca.crt" "$1" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 150 ]; then
      echo "$2 did not come up:" >&2
      cat "$work"/*.log >&2
      exit 1
    fi
    sleep 0.2
  done
}
wait_for "https://127.0.0.1:$BYLAW_PORT/readyz" "bylaw serve"

"$PROMETHEUS" --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/data" \
  --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" >"$work/prometheus.log" 2>&1 &
pids="$pids $!"
prom="http://127.0.0.1:$PROMETHEUS_PORT"
wait_for "$prom/-/ready" "prometheus"

# Three rounds of reviews, a few scrapes apart, so counters rise between samples.
for round in 1 2 3; do
  for review in "$REVIEWS"/*.json; do
    for phase in mutate validate; do
      curl -fsS --cacert "$work/tls/ca.crt" -H 'Content-Type: application/json' \
        --data-binary "@$review" "https://127.0.0.1:$BYLAW_PORT/$phase/fail?timeout=10s" >/dev/null
    done
  done
  sleep 3
done

query() { # PromQL → the JSON answer of an instant query
  curl -fsS -G --data-urlencode "query=$1" "$prom/api/v1/query"
}

passed=0
failed=0
expressions=$("$BYLAW" jp query -u -i "$DASHBOARD" "join(\`\"\\n\"\`, panels[].targets[].expr)")
exprs_file="$work/exprs"
printf '%s\n' "$expressions" |
  sed 's/\$__rate_interval/1m/g; s/\$__range/1h/g; s/\$namespace/.*/g; s/\$policy/.*/g' >"$exprs_file"
while IFS= read -r expr; do
  answer=$(query "$expr" || echo '{"status":"error"}')
  count=$(printf '%s' "$answer" | "$BYLAW" jp query -u "(status == 'success' && length(data.result)) || \`0\`")
  if [ "$count" -gt 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: no data for dashboard query: $expr" >&2
    echo "      answer: $answer" >&2
  fi
done <"$exprs_file"

# Every alert rule was loaded and evaluated against the scraped data without error.
rules=$(curl -fsS "$prom/api/v1/rules")
loaded=$(printf '%s' "$rules" | "$BYLAW" jp query -u "length(data.groups[].rules[])")
unhealthy=$(printf '%s' "$rules" | "$BYLAW" jp query -u \
  "join(', ', data.groups[].rules[?health != 'ok'].join(': ', [name, lastError || health])[])")
expected=$(grep -c '^ *- alert:' "$RULES")
if [ "$loaded" -eq "$expected" ] && [ -z "$unhealthy" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: $loaded of $expected alert rules loaded; not healthy: $unhealthy" >&2
fi

# bylaw is scraped, so BylawAbsent must be neither pending nor firing.
firing=$(query 'ALERTS{alertname="BylawAbsent"}' | "$BYLAW" jp query -u "length(data.result)")
if [ "$firing" -eq 0 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: BylawAbsent fires while bylaw is scraped" >&2
fi

echo "observability: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
