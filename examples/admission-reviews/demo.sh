#!/bin/sh
# Runs `bylaw serve` standalone on the example policies with a development certificate, sends
# every sample AdmissionReview of this directory over HTTPS to the mutating and the validating
# endpoint, prints each patch and decision, then stops the server. No cluster needed; needs curl.
# Run from the repository root (`make demo` does).
set -eu

BYLAW=${BYLAW:-target/debug/bylaw}
PORT=${PORT:-18443}
HERE=examples/admission-reviews

command -v curl >/dev/null 2>&1 || {
  echo "make demo needs curl to send the AdmissionReviews" >&2
  exit 1
}

work=$(mktemp -d)
"$BYLAW" serve --policies examples --namespace-labels "$HERE/namespaces.yaml" \
  --dev-tls --dev-tls-dir "$work" --listen "127.0.0.1:$PORT" --log-filter warn \
  >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM

url="https://localhost:$PORT"
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
echo "bylaw serve is ready on $url (policies from examples/, CA in $work/ca.crt)"

post() {
  curl -fsS --cacert "$work/ca.crt" -H 'Content-Type: application/json' \
    --data-binary "@$2" "$url/$1?timeout=10s"
}

for review in "$HERE"/*.json; do
  summary=$(printf '%s' "$review" | sed 's|.*/||; s|\.json$||')
  request=$("$BYLAW" jp query -u -i "$review" \
    "join(' ', [request.operation, request.kind.kind, join('/', [request.namespace, request.name])])")
  echo
  echo "== $summary: $request"
  post mutate/fail "$review" | "$BYLAW" jp query -u \
    "(response.patch && join('', ['mutate:   patch ', base64_decode(response.patch)])) || 'mutate:   no change'" |
    sed 's/^/   /'
  post validate/fail "$review" | "$BYLAW" jp query -u \
    "join('', ['validate: ', (response.allowed && 'ALLOWED') || 'DENIED'])" \
    "response.status.message || ''" \
    "join('\n', response.warnings || \`[]\`)" | sed '/^$/d; s/^/   /'
done
