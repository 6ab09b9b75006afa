#!/bin/sh
# In-cluster measurements against a real API server (KUBECONFIG with client certificates, as
# a hand-started control plane has): time from applying a policy to the API server enforcing
# it (20 applies), idle RSS and CPU of `bylaw serve` with the library's 22 Pod Security
# policies and with 300 policies. Registers webhooks by URL under its own name and removes
# them at the end.
# Usage: BYLAW=target/release/bylaw CORPUS=../shared/conformance/kyverno-policies sh tests/bench/cluster.sh
set -eu
: "${BYLAW:?release bylaw binary}" "${CORPUS:?Kyverno policy library}" "${KUBECONFIG:?}"
PORT=${PORT:-19443}
NAME=bylaw-bench
work=$(mktemp -d)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')
cert=$(kubectl config view --minify --raw -o jsonpath='{.users[0].user.client-certificate}')
key=$(kubectl config view --minify --raw -o jsonpath='{.users[0].user.client-key}')
api() { curl -s --cacert "$ca" --cert "$cert" --key "$key" -H 'Content-Type: application/json' "$@"; }
kubectl create namespace bylaw-bench >/dev/null 2>&1 || true
"$BYLAW" crds | kubectl apply -f - >/dev/null
"$BYLAW" serve --kubeconfig "$KUBECONFIG" --namespace bylaw-bench --webhook-name $NAME \
  --listen 127.0.0.1:$PORT --webhook-url https://127.0.0.1:$PORT --log-filter warn > "$work/serve.log" 2>&1 &
pid=$!
cleanup() {
  kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  "$BYLAW" serve --kubeconfig "$KUBECONFIG" --namespace bylaw-bench --webhook-name $NAME --cleanup >/dev/null 2>&1 || true
  kubectl delete cpol -l bylaw-bench=yes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sleep 3
now_ms() { date +%s%3N; }

echo "apply -> enforcement, 20 policies (each denies ConfigMaps carrying its own label):"
for i in $(seq 1 20); do
  policy="{\"apiVersion\":\"kyverno.io/v1\",\"kind\":\"ClusterPolicy\",\"metadata\":{\"name\":\"bench-$i\",\"labels\":{\"bylaw-bench\":\"yes\"}},
    \"spec\":{\"validationFailureAction\":\"Enforce\",\"background\":false,\"rules\":[{\"name\":\"r\",
    \"match\":{\"any\":[{\"resources\":{\"kinds\":[\"ConfigMap\"],\"selector\":{\"matchLabels\":{\"bench\":\"b$i\"}}}}]},
    \"validate\":{\"message\":\"bench $i\",\"deny\":{}}}]}}"
  cm="{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c$i\",\"labels\":{\"bench\":\"b$i\"}}}"
  start=$(now_ms)
  api -X POST "$server/apis/kyverno.io/v1/clusterpolicies" -d "$policy" > /dev/null
  while ! api -X POST "$server/api/v1/namespaces/default/configmaps?dryRun=All" -d "$cm" | grep -q denied; do
    [ $(( $(now_ms) - start )) -lt 10000 ] || { echo "policy $i never enforced"; exit 1; }
  done
  echo $(( $(now_ms) - start ))
done > "$work/latencies"
sort -n "$work/latencies" | awk '{a[NR]=$1} END {printf "  p50 %d ms, min %d ms, max %d ms (n=%d)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
kubectl delete cpol -l bylaw-bench=yes >/dev/null

rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
idle() {
  sleep 10
  before=$(cpu_ticks); sleep 30; after=$(cpu_ticks)
  hz=$(getconf CLK_TCK)
  echo "  idle RSS $(rss), idle CPU $(awk "BEGIN {printf \"%.2f%%\", ($after - $before) / $hz / 30 * 100}") over 30 s"
}
echo "no policies:"; idle
for dir in pod-security/baseline pod-security/restricted pod-security/subrule; do
  find "$CORPUS/$dir" -name '*.yaml' -not -path '*/.*' | sort | while read -r f; do
    if grep -q '^kind: ClusterPolicy' "$f"; then echo '---'; cat "$f"; echo; fi
  done
done > "$work/pss.yaml"
apply_labelled() {
  kubectl apply -f - -o name | xargs sh -c 'kubectl label --overwrite "$@" bylaw-bench=yes' label >/dev/null
}
apply_labelled < "$work/pss.yaml"
count() { kubectl get cpol -l bylaw-bench=yes --no-headers | wc -l; }
echo "$(count) Pod Security policies:"; idle
i=0
while [ "$(count)" -lt 300 ]; do
  i=$((i + 1))
  sed "s/^  name: \(.*\)$/  name: \1-copy$i/" "$work/pss.yaml" | apply_labelled
done
echo "$(count) policies:"; idle
