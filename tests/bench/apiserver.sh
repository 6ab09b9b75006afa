#!/bin/sh
# bylaw's own CPU per admission review behind a real kube-apiserver (`make bench-apiserver`).
#
# Runs `bylaw serve` on this host (standalone, the Pod Security set from files, dev TLS),
# registers a ValidatingWebhookConfiguration by URL (as the in-cluster e2e tests do: control
# planes without nodes cannot route to a Service) that sends only Pod CREATEs of its own
# namespace to bylaw, then drives REVIEWS dry-run Pod creates at CONCURRENCY with oha through
# the API server. Prints the API server's throughput and latency as the client sees it, and
# bylaw's CPU (utime + stime from /proc) divided by the reviews it answered (its own
# bylaw_admission_requests_total), with the Pod Security set and then with no policies.
#
# Standalone on purpose: the policies stay in this process, so other users of a shared
# cluster (and other bylaw instances watching ClusterPolicies) are not touched; only Pods of
# the bench's namespace go through the webhook. The webhook configuration is removed on exit.
#
# Needs: KUBECONFIG with a client certificate or a token (files or inline data), kubectl,
# curl, oha. Usage:
#   KUBECONFIG=… BYLAW=target/release/bylaw POLICY_DIR=…/pod-security sh tests/bench/apiserver.sh
set -eu

: "${BYLAW:?release bylaw binary}" "${POLICY_DIR:?directory with baseline, restricted, subrule}"
: "${KUBECONFIG:?kubeconfig of the cluster to measure against}"
export KUBECONFIG
REVIEWS=${REVIEWS:-4000}
WARMUP=${WARMUP:-300}
CONCURRENCY=${CONCURRENCY:-10}
PORT=${PORT:-19445}
NAME=${NAME:-bylaw-bench-apiserver}
NAMESPACE=${NAMESPACE:-bylaw-bench-apiserver}
POD=${POD:-examples/admission-reviews/bench/pod-create.json}

for tool in kubectl curl oha; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench-apiserver needs $tool" >&2
    exit 1
  }
done

work=$(mktemp -d)
bylaw_pid=
stop_bylaw() {
  if [ -n "$bylaw_pid" ]; then
    kill "$bylaw_pid" 2>/dev/null || true
    wait "$bylaw_pid" 2>/dev/null || true
    bylaw_pid=
  fi
}
cleanup() {
  kubectl delete validatingwebhookconfiguration "$NAME" --ignore-not-found >/dev/null 2>&1 || true
  stop_bylaw
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The API server's address and how to authenticate, whether the kubeconfig names files or
# carries the data inline.
view() { kubectl config view --minify --raw -o jsonpath="$1"; }
credential() { # credential FIELD OUT: a file path field, else its -data twin decoded
  path=$(view "$1")
  if [ -n "$path" ]; then
    cp "$path" "$2"
  else
    data=$(view "$(echo "$1" | sed 's/}$/-data}/')")
    [ -n "$data" ] || return 1
    echo "$data" | base64 -d >"$2"
  fi
}
api=$(view '{.clusters[0].cluster.server}')
credential '{.clusters[0].cluster.certificate-authority}' "$work/api-ca.crt" || rm -f "$work/api-ca.crt"
token=
if ! { credential '{.users[0].user.client-certificate}' "$work/client.crt" &&
  credential '{.users[0].user.client-key}' "$work/client.key"; }; then
  token=$(view '{.users[0].user.token}')
  [ -n "$token" ] || {
    echo "the kubeconfig has neither a client certificate nor a token" >&2
    exit 1
  }
fi
# with_auth TOOL ARGS…: runs curl or oha with the API server's CA and the credentials.
with_auth() {
  tool=$1
  shift
  if [ -n "$token" ]; then
    set -- -H "Authorization: Bearer $token" "$@"
  else
    set -- --cert "$work/client.crt" --key "$work/client.key" "$@"
  fi
  if [ -f "$work/api-ca.crt" ]; then
    set -- --cacert "$work/api-ca.crt" "$@"
  fi
  "$tool" "$@"
}

kubectl create namespace "$NAMESPACE" >/dev/null 2>&1 || true
# The bench Pod: the review's object, in the bench namespace.
"$BYLAW" jp query -u -i "$POD" \
  "merge(request.object, {metadata: merge(request.object.metadata, {namespace: '$NAMESPACE'})})" \
  >"$work/pod.json"
# A privileged variant, which the Pod Security set must refuse: proof the webhook is in the path.
"$BYLAW" jp query -u -i "$work/pod.json" \
  "merge(@, {spec: merge(spec, {hostNetwork: \`true\`})})" >"$work/privileged.json"
create_url="$api/api/v1/namespaces/$NAMESPACE/pods?dryRun=All"
create() { # create FILE: one dry-run create, prints the API server's answer
  with_auth curl -sS -H 'Content-Type: application/json' --data-binary "@$1" "$create_url"
}

register() {
  ca_bundle=$(base64 -w0 <"$work/tls/ca.crt")
  kubectl apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: $NAME
webhooks:
  - name: pods.bench.bylaw.dev
    clientConfig:
      url: https://127.0.0.1:$PORT/validate/fail
      caBundle: $ca_bundle
    rules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE]
        resources: [pods]
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: $NAMESPACE
    failurePolicy: Fail
    sideEffects: None
    admissionReviewVersions: [v1]
    timeoutSeconds: 10
EOF
}

metric() { # the sum of a counter family in bylaw's /metrics
  curl -fsS --cacert "$work/tls/ca.crt" "https://127.0.0.1:$PORT/metrics" |
    awk -v name="$1" 'index($0, name "{") == 1 { sum += $NF } END { printf "%d\n", sum }'
}
cpu_ticks() { sed 's/.*) //' "/proc/$bylaw_pid/stat" | awk '{print $12 + $13}'; }

# bench NAME POLICIES: one run against a fresh `bylaw serve`.
bench() {
  name=$1
  policies=$2
  mkdir -p "$work/tls"
  "$BYLAW" serve --policies "$policies" --dev-tls --dev-tls-dir "$work/tls" \
    --listen "127.0.0.1:$PORT" --log-filter warn >"$work/serve.log" 2>&1 &
  bylaw_pid=$!
  tries=0
  until curl -fsS --cacert "$work/tls/ca.crt" "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$bylaw_pid" 2>/dev/null; then
      echo "bylaw serve did not become ready:" >&2
      cat "$work/serve.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  register
  # The API server picks the configuration up within a second or so: wait until a create
  # reaches bylaw.
  tries=0
  while [ "$(metric bylaw_admission_requests_total)" -eq 0 ]; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || {
      echo "the API server never called bylaw; last answer: $(create "$work/pod.json")" >&2
      exit 1
    }
    create "$work/pod.json" >/dev/null
    sleep 0.1
  done
  if [ "$name" = "Pod Security" ]; then
    create "$work/privileged.json" | grep 'denied the request' >/dev/null || {
      echo "a privileged Pod was not refused: $(create "$work/privileged.json")" >&2
      exit 1
    }
  fi
  create "$work/pod.json" | grep '"kind": *"Pod"' >/dev/null || {
    echo "the bench Pod is refused: $(create "$work/pod.json")" >&2
    exit 1
  }

  load() {
    with_auth oha -n "$1" -c "$CONCURRENCY" --no-tui -m POST \
      -H 'Content-Type: application/json' -D "$work/pod.json" --output-format json "$create_url"
  }
  load "$WARMUP" >/dev/null
  reviews_before=$(metric bylaw_admission_requests_total)
  ticks_before=$(cpu_ticks)
  load "$REVIEWS" >"$work/oha.json"
  ticks_after=$(cpu_ticks)
  reviews_after=$(metric bylaw_admission_requests_total)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$bylaw_pid/status")
  kubectl delete validatingwebhookconfiguration "$NAME" >/dev/null
  stop_bylaw

  echo "== $name: $REVIEWS dry-run Pod creates, concurrency $CONCURRENCY, through $api"
  "$BYLAW" jp query -u -i "$work/oha.json" \
    "join('', ['API server answers: ', to_string(statusCodeDistribution)])" \
    "join('', ['throughput: ', to_string(round(summary.requestsPerSec, \`0\`)), ' creates/s'])" \
    "join('', ['latency ms: p50 ', to_string(round(multiply(latencyPercentiles.p50, \`1000\`), \`2\`)), ', p99 ', to_string(round(multiply(latencyPercentiles.p99, \`1000\`), \`2\`))])"
  reviews=$((reviews_after - reviews_before))
  awk -v t="$((ticks_after - ticks_before))" -v hz="$(getconf CLK_TCK)" -v n="$reviews" \
    'BEGIN { printf "bylaw: %d reviews answered, CPU %.2f s, %.3f ms per review\n", n, t / hz, (n > 0) ? t / hz / n * 1000 : 0 }'
  awk -v kb="$hwm" 'BEGIN { printf "bylaw peak RSS (VmHWM): %.1f MiB\n", kb / 1024 }'
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "API server: $(kubectl version -o json 2>/dev/null | "$BYLAW" jp query -u serverVersion.gitVersion)"
}

# POLICIES=… (comma-separated paths) measures only that set, e.g. the issue's 18 Pod Security
# policies without the podSecurity subrule ones: POLICIES=$POLICY_DIR/baseline,$POLICY_DIR/restricted
if [ -n "${POLICIES:-}" ]; then
  bench "policies" "$POLICIES"
  exit 0
fi
bench "Pod Security" "$POLICY_DIR/baseline,$POLICY_DIR/restricted,$POLICY_DIR/subrule"
mkdir -p "$work/none"
bench "no policies" "$work/none"
