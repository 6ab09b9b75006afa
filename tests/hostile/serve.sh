# Sourced by run.sh and soak.sh: starts `bylaw serve` on 127.0.0.1:$PORT with a dev CA in a
# fresh $work directory, passing "$@" through, and waits until it is ready. Sets $work,
# $server (its pid) and $url, and removes both on exit.
start_server() {
  work=$(mktemp -d)
  "$BYLAW" serve "$@" --dev-tls --dev-tls-dir "$work" --listen "127.0.0.1:$PORT" \
    --log-filter error >"$work/serve.log" 2>&1 &
  server=$!
  trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
  url="https://localhost:$PORT"
  tries=0
  until curl -fsS --cacert "$work/ca.crt" "$url/readyz" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] && kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
  done
}
