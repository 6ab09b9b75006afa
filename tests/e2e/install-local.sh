#!/bin/sh
# docs/install.md, "A local binary outside the cluster", as a test: render the chart without
# Pods, apply it, run the locally built bylaw with the chart's ServiceAccount and register it
# by URL, then check that the API server denies a privileged Pod with bylaw's message, admits
# a plain one, that Prometheus gets the dashboard's data from bylaw, and that --cleanup leaves
# no webhook configuration behind. Needs a cluster (KUBECONFIG), helm (HELM), kubectl, curl,
# and prometheus for the dashboard part. `make e2e-install` runs it from the repository root.
set -eu

: "${KUBECONFIG:?set KUBECONFIG to the cluster to install into}"
HELM=${HELM:-helm}
BYLAW=${BYLAW:-target/debug/bylaw}
PROMETHEUS=${PROMETHEUS:-prometheus}
NS=${BYLAW_NAMESPACE:-bylaw-system}
DEMO=${DEMO_NAMESPACE:-bylaw-install-demo}
PORT=${BYLAW_PORT:-19643}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19391}

work=$(mktemp -d)
pids=""
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do wait "$pid" 2>/dev/null || true; done
  "$BYLAW" serve --cleanup --kubeconfig "$work/bylaw.kubeconfig" --namespace "$NS" \
    >/dev/null 2>&1 || true
  kubectl delete namespace "$DEMO" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl delete cpol baseline-privileged --ignore-not-found >/dev/null 2>&1 || true
  [ -f "$work/chart.yaml" ] && kubectl delete -f "$work/chart.yaml" --ignore-not-found >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# 1. The chart, without Pods and without the cleanup hook, registered by URL.
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
"$BYLAW" crds | kubectl apply --server-side --force-conflicts -f - >/dev/null
"$HELM" template bylaw helm/bylaw --namespace "$NS" --no-hooks \
  --set replicaCount=0 --set "webhook.url=https://127.0.0.1:$PORT" >"$work/chart.yaml"
kubectl apply --server-side -f "$work/chart.yaml" >/dev/null && pass "chart applied"

# 2. A kubeconfig with the chart's ServiceAccount: bylaw gets exactly the chart's RBAC.
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
# The cluster's CA, embedded in the kubeconfig or in a file it names.
ca_data=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
if [ -n "$ca_data" ]; then
  printf '%s' "$ca_data" | base64 -d >"$work/cluster-ca.crt"
else
  cp "$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')" \
    "$work/cluster-ca.crt"
fi
kc="--kubeconfig $work/bylaw.kubeconfig"
kubectl config set-cluster target --server "$server" --certificate-authority "$work/cluster-ca.crt" \
  --embed-certs $kc >/dev/null
kubectl config set-credentials bylaw $kc \
  --token "$(kubectl -n "$NS" create token bylaw --duration 1h)" >/dev/null
kubectl config set-context bylaw --cluster target --user bylaw --namespace "$NS" $kc >/dev/null
kubectl config use-context bylaw $kc >/dev/null

# 3. bylaw, outside the cluster.
"$BYLAW" serve --kubeconfig "$work/bylaw.kubeconfig" --namespace "$NS" \
  --listen "127.0.0.1:$PORT" --webhook-url "https://127.0.0.1:$PORT" --log-filter warn \
  >"$work/bylaw.log" 2>&1 &
pids="$pids $!"
tries=0
until curl -fsSk "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 300 ]; then cat "$work/bylaw.log" >&2; fail "bylaw never ready"; exit 1; fi
  sleep 0.2
done
pass "bylaw serve ready"

# 4. A Pod Security policy in Enforce: Ready, then a privileged Pod is refused.
kubectl create namespace "$DEMO" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
sed 's/validationFailureAction: Audit/validationFailureAction: Enforce/' \
  policies/pod-security/baseline/baseline-privileged.yaml | kubectl apply -f - >/dev/null
if kubectl wait --for=condition=Ready cpol/baseline-privileged --timeout=30s >/dev/null; then
  pass "policy Ready"
else
  fail "policy not Ready: $(kubectl get cpol baseline-privileged -o jsonpath='{.status}')"
fi
denied=""
for _ in $(seq 1 50); do
  if out=$(kubectl -n "$DEMO" run priv --image=busybox --privileged --restart=Never 2>&1); then
    kubectl -n "$DEMO" delete pod priv --wait=false >/dev/null 2>&1 || true
    sleep 0.2
  else
    denied=$out
    break
  fi
done
case "$denied" in
  *baseline-privileged*) pass "privileged Pod denied: $(printf '%s' "$denied" | head -c 200)" ;;
  *) fail "privileged Pod not denied by bylaw: $denied" ;;
esac
if kubectl -n "$DEMO" run plain --image=busybox --restart=Never >/dev/null 2>&1; then
  pass "plain Pod admitted"
else
  fail "plain Pod refused"
fi

# 5. The dashboard's data: Prometheus scrapes bylaw and the violation panels have series.
if command -v "$PROMETHEUS" >/dev/null 2>&1; then
  cat >"$work/prometheus.yml" <<CONFIG
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: bylaw
    scheme: https
    tls_config: {insecure_skip_verify: true}
    static_configs: [{targets: ["127.0.0.1:$PORT"]}]
CONFIG
  "$PROMETHEUS" --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/data" \
    --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" >"$work/prometheus.log" 2>&1 &
  pids="$pids $!"
  for expr in \
    'sum by (policy_name) (increase(bylaw_policy_results_total{rule_result="fail"}[5m]))' \
    'sum(bylaw_admission_requests_total{request_allowed="false"})'; do
    # Prometheus needs a few scrapes (and, on a busy machine, time to start): wait up to 60 s.
    count=0
    for _ in $(seq 1 60); do
      count=$(curl -fsS -G --data-urlencode "query=$expr" \
        "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" 2>/dev/null |
        "$BYLAW" jp query -u "length(data.result)" 2>/dev/null || echo 0)
      [ "${count:-0}" -gt 0 ] && break
      sleep 1
    done
    if [ "${count:-0}" -gt 0 ]; then pass "dashboard data: $expr"; else fail "no data: $expr"; fi
  done
else
  echo "skipped: the dashboard part needs $PROMETHEUS"
fi

# 6. Stop bylaw and clean up: no webhook configuration may be left behind.
for pid in $pids; do kill "$pid" 2>/dev/null || true; done
for pid in $pids; do wait "$pid" 2>/dev/null || true; done
pids=""
"$BYLAW" serve --cleanup --kubeconfig "$work/bylaw.kubeconfig" --namespace "$NS" >/dev/null
left=$(kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations -o name | grep -i bylaw || true)
if [ -z "$left" ]; then pass "cleanup removed the webhook configurations"; else fail "left behind: $left"; fi

echo "install-local: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
